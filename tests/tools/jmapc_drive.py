"""Drives sealmail's JMAP with jmapc: session, mailboxes, threads,
changes, keywords, snippets and push. Prints one JSON document."""
import json, smtplib, sys, threading
from jmapc import Client, Ref, EmailQueryFilterCondition
from jmapc.methods import (EmailChanges, EmailGet, EmailQuery, EmailSet, MailboxGet,
                           SearchSnippetGet, ThreadGet)

host, user, password, lmtp_port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
out = {}

def deliver(subject, extra=""):
    msg = (f"From: bob@example.net\r\nTo: {user}\r\nSubject: {subject}\r\n"
           f"Message-ID: <{subject.replace(' ', '-')}@example.net>\r\n{extra}\r\n"
           f"Text about {subject}.\r\n").encode()
    lm = smtplib.LMTP("127.0.0.1", lmtp_port)
    lm.sendmail("bob@example.net", [user], msg)
    lm.quit()

client = Client.create_with_password(host=host, user=user, password=password)
out["account"] = client.account_id
boxes = client.request(MailboxGet(ids=None))
out["mailboxes"] = sorted((m.name, m.role) for m in boxes.data)

got = client.request([
    EmailQuery(sort=None),
    EmailGet(ids=Ref("/ids"), properties=["threadId", "subject", "keywords"]),
])
emails = got[1].response.data
state = got[1].response.state
out["subjects"] = sorted(e.subject for e in emails)
threads = {e.thread_id for e in emails}
out["threads"] = len(threads)
tid = emails[0].thread_id
t = client.request(ThreadGet(ids=[tid]))
out["thread_members"] = len(t.data[0].email_ids)

# Push: the event source wakes for a delivery (RFC 8620 §7.3).
events = []
def listen():
    for event in client.events:
        events.append(event)
        return
th = threading.Thread(target=listen, daemon=True)
th.start()
import time
time.sleep(1.0)
deliver("third message")
th.join(15)
out["push"] = bool(events) and client.account_id in events[0].data.changed

changes = client.request(EmailChanges(since_state=state))
out["created"] = len(changes.created)
new_state = changes.new_state

first = emails[0].id
client.request(EmailSet(update={first: {"keywords/$seen": True}}))
changes = client.request(EmailChanges(since_state=new_state))
out["updated"] = changes.updated

snip = client.request([
    EmailQuery(filter=EmailQueryFilterCondition(text="third")),
    SearchSnippetGet(ids=Ref("/ids"), filter=EmailQueryFilterCondition(text="third")),
])
out["snippet"] = snip[1].response.data[0].subject if snip[1].response.data else None
out["first"] = first
print(json.dumps(out))
