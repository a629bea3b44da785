//! The APPEND forms imap-codec refuses: MULTIAPPEND (RFC 3502), CATENATE
//! (RFC 4469, also inside MULTIAPPEND) and a literal8 carried by either.
//! `append_command` parses them; this module builds each message (its
//! flags and date typed by imap-codec, its CATENATE parts resolved) and
//! hands them all to [`Session::append_messages`], which stores all of
//! them or none.

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument};

use super::append_command::{AppendCommand, AppendData, AppendSyntaxError, CatPart};
use super::error::ImapError;
use super::messages::{date_of, store_flags, NewAppend};
use super::session::{Done, Session};

/// The tag and the parse of a message imap-codec refused, when it is an
/// APPEND command (`tag SP "APPEND" SP ...`); `None` for anything else.
pub(crate) fn refused_append(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<AppendCommand, AppendSyntaxError>)> {
    let super::scan::Refused {
        tag, command: rest, ..
    } = super::scan::refused(e)?;
    if !rest.get(..7)?.eq_ignore_ascii_case(b"APPEND ") {
        return None;
    }
    Some((tag, super::append_command::parse(rest)))
}

impl Session {
    /// An APPEND that imap-codec refused, parsed by `append_command`:
    /// answered as any command is (span, metrics, OK or NO/BAD).
    pub(crate) async fn append_extended(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<AppendCommand, AppendSyntaxError>,
    ) {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "APPEND");
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            self.account()?;
            self.check_token().await?;
            let cmd = parsed.map_err(|e| ImapError::syntax(e.to_string()))?;
            self.append_command(cmd).await
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, "APPEND", started, &span, result);
    }

    async fn append_command(&mut self, cmd: AppendCommand) -> Result<Done, ImapError> {
        let mut target = None;
        let mut messages = Vec::with_capacity(cmd.messages.len());
        let mut total: u64 = 0;
        for message in cmd.messages {
            let (mailbox, options) = typed_options(&message.codec_form(&cmd.mailbox))?;
            if target.is_none() {
                // why first: a missing mailbox is TRYCREATE whatever the
                // URLs say (imaptest's catenate script).
                target = Some(self.append_target(&mailbox).await?);
            }
            let raw = self.message_bytes(message.data).await?;
            total = total.saturating_add(raw.len() as u64);
            self.check_total(total)?;
            messages.push(NewAppend {
                flags: options.0,
                internal_date: options.1,
                raw,
            });
        }
        let target = target.ok_or_else(|| ImapError::syntax("APPEND without a message"))?;
        self.append_messages(&target, messages).await
    }

    /// The whole command's messages fit in what one command may carry
    /// (the largest message plus 64 KiB, as for its literals).
    fn check_total(&self, total: u64) -> Result<(), ImapError> {
        let limit = u64::from(self.ctx.config.max_literal_bytes) + 64 * 1024;
        if total > limit {
            return Err(ImapError::TooBig { size: total, limit });
        }
        Ok(())
    }

    /// The bytes of one message: its literal, or its CATENATE parts
    /// joined; binary content (literal8) made 7-bit safe.
    async fn message_bytes(&self, data: AppendData) -> Result<Vec<u8>, ImapError> {
        let parts = match data {
            AppendData::Literal { bytes, binary } => {
                return Ok(if binary {
                    super::literal8::to_seven_bit_safe(bytes)
                } else {
                    bytes
                });
            }
            AppendData::Catenate(parts) => parts,
        };
        let limit = u64::from(self.ctx.config.max_literal_bytes);
        let mut out = Vec::new();
        let mut binary = false;
        for part in parts {
            match part {
                CatPart::Text { bytes, binary: b } => {
                    binary |= b;
                    out.extend_from_slice(&bytes);
                }
                CatPart::Url(url) => out.extend_from_slice(&self.url_bytes(&url).await?),
            }
            let size = out.len() as u64;
            if size > limit {
                return Err(ImapError::TooBig { size, limit });
            }
        }
        Ok(if binary {
            super::literal8::to_seven_bit_safe(out)
        } else {
            out
        })
    }

    /// The bytes a CATENATE URL names, or `NO [BADURL url]`.
    async fn url_bytes(&self, url: &[u8]) -> Result<Vec<u8>, ImapError> {
        let account = self.account()?;
        let bad = |reason: String| ImapError::BadUrl {
            url: super::catenate::resp_text(url),
            reason,
        };
        let parsed = super::catenate::parse(url, &account.address).map_err(bad)?;
        let id = account.id;
        let keys = self.reading_keys();
        self.with_store(move |s| super::catenate::resolve(s, id, &parsed, keys.as_deref()))
            .await?
            .map_err(bad)
    }
}

/// The mailbox, flags and INTERNALDATE of one message, through
/// imap-codec's plain APPEND grammar (`codec` from
/// [`super::append_command::AppendMessage::codec_form`]).
fn typed_options(
    codec: &[u8],
) -> Result<(WireMailbox<'static>, (crate::store::Flags, i64)), ImapError> {
    let refused = || ImapError::syntax("APPEND: the mailbox name, flag list or date is not valid");
    let (_, command) = CommandCodec::default()
        .decode(codec)
        .map_err(|_| refused())?;
    match command.body {
        CommandBody::Append {
            mailbox,
            flags,
            date,
            ..
        } => Ok((
            imap_next::imap_types::IntoStatic::into_static(mailbox),
            (store_flags(&flags), date_of(date.as_ref())),
        )),
        _ => Err(refused()),
    }
}
