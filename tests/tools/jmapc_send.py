"""Sends mail through sealmail's JMAP with jmapc, as its own
send_email example does: the Drafts and Sent mailboxes by role
(Mailbox/query), the Identity (Identity/get), then one request with
Email/set create and EmailSubmission/set naming the draft by creation id,
moving it to Sent on success (RFC 8621 §7.5). Prints one JSON document."""
import json, sys
from jmapc import (Client, Email, EmailAddress, EmailBodyPart, EmailBodyValue,
                   EmailHeader, EmailSubmission, MailboxQueryFilterCondition, Ref)
from jmapc.methods import (EmailSet, EmailSubmissionSet, IdentityGet, MailboxGet,
                           MailboxQuery)

host, user, password, to, marker = sys.argv[1:6]
client = Client.create_with_password(host=host, user=user, password=password)
out = {}

def box(role):
    got = client.request([
        MailboxQuery(filter=MailboxQueryFilterCondition(role=role)),
        MailboxGet(ids=Ref("/ids")),
    ])
    return got[1].response.data[0].id

drafts, sent = box("drafts"), box("sent")
identity = client.request(IdentityGet()).data[0]
out["identity"] = identity.email

got = client.request([
    EmailSet(create={"draft": Email(
        mail_from=[EmailAddress(name="Alice via jmapc", email=identity.email)],
        to=[EmailAddress(email=to)],
        subject="sent with jmapc",
        keywords={"$draft": True},
        mailbox_ids={drafts: True},
        body_values={"body": EmailBodyValue(value=marker)},
        text_body=[EmailBodyPart(part_id="body", type="text/plain")],
        headers=[EmailHeader(name="X-Sent-With", value="jmapc")],
    )}),
    EmailSubmissionSet(
        on_success_update_email={"#send": {
            f"mailboxIds/{drafts}": None,
            f"mailboxIds/{sent}": True,
            "keywords/$draft": None,
        }},
        create={"send": EmailSubmission(email_id="#draft", identity_id=identity.id)},
    ),
])
created = got[1].response.created["send"]
out["undo_status"] = created.undo_status.value
out["delivered"] = {k: v.delivered.value for k, v in created.delivery_status.items()}
out["calls"] = [type(r.response).__name__ for r in got]
print(json.dumps(out))
