//! Which JMAP data types an announced change touched: a small set, so
//! that listeners can skip what they do not show (IMAP IDLE ignores a
//! certificate change) and a push names only the types whose state moved
//! (RFC 8620 §7.1: `changed` maps each type to its new state).
//!
//! Every type's state is the account's one change counter, so a push
//! could name every type each time; naming only the changed ones spares
//! a client a round of `/changes` calls that come back empty. The set is
//! derived from the change-log entries a commit writes
//! ([`DataTypes::of`]), in the store's commit hook, so every writer is
//! covered: JMAP, IMAP, LMTP, the management API.

use crate::store::{ChangeKind, ChangedObject};

/// A set of JMAP data types. The bits are also the wire form of the
/// change bus between nodes (`pg_bus`): keep their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct DataTypes(u8);

impl DataTypes {
    /// No type.
    pub const NONE: Self = Self(0);
    /// `Mailbox` (RFC 8621 §2): also its counts when an Email changes.
    pub const MAILBOX: Self = Self(1);
    /// `Email` (RFC 8621 §4).
    pub const EMAIL: Self = Self(1 << 1);
    /// `Thread` (RFC 8621 §3): when an Email joins or leaves one.
    pub const THREAD: Self = Self(1 << 2);
    /// `Certificate` (sealmail's encryption extension).
    pub const CERTIFICATE: Self = Self(1 << 3);
    /// `EncryptionSettings` (sealmail's encryption extension); its
    /// `warnings` follow the certificates.
    pub const ENCRYPTION_SETTINGS: Self = Self(1 << 4);
    /// `Quota` (RFC 9425): bytes used, the account's quota.
    pub const QUOTA: Self = Self(1 << 5);
    /// Every type.
    pub const ALL: Self = Self((1 << 6) - 1);
    /// What an IMAP session shows: mailboxes and their messages.
    pub const MAIL: Self = Self(Self::MAILBOX.0 | Self::EMAIL.0 | Self::THREAD.0);

    /// The names, in the order pushes list them.
    const NAMES: [(Self, &'static str); 6] = [
        (Self::MAILBOX, "Mailbox"),
        (Self::EMAIL, "Email"),
        (Self::THREAD, "Thread"),
        (Self::CERTIFICATE, "Certificate"),
        (Self::ENCRYPTION_SETTINGS, "EncryptionSettings"),
        (Self::QUOTA, "Quota"),
    ];

    /// The types whose state a change-log entry moves.
    pub fn of(object: &ChangedObject, kind: ChangeKind) -> Self {
        match object {
            ChangedObject::Mailbox(_) => Self::MAILBOX,
            ChangedObject::Email(e) => {
                let mut types = Self::EMAIL | Self::MAILBOX;
                if e.thread_change.is_some() {
                    types |= Self::THREAD;
                }
                if matches!(kind, ChangeKind::Created | ChangeKind::Destroyed) {
                    types |= Self::QUOTA;
                }
                types
            }
            ChangedObject::Certificate(_) => Self::CERTIFICATE | Self::ENCRYPTION_SETTINGS,
            ChangedObject::Settings => Self::ENCRYPTION_SETTINGS,
            ChangedObject::Account => Self::QUOTA,
            // Only read from old logs, never written now; say everything.
            _ => Self::ALL,
        }
    }

    /// The type named `name` (RFC 8620 type names, case-sensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(t, _)| *t)
    }

    /// The set `names` lists; names of types this server does not push
    /// are left out.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        names
            .into_iter()
            .filter_map(Self::from_name)
            .fold(Self::NONE, |a, b| a | b)
    }

    /// The names of the types in the set.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(t, _)| self.contains(*t))
            .map(|(_, n)| n)
    }

    /// Whether every type of `other` is in the set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set shares a type with `other`.
    pub fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The wire form (the change bus).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The set of a wire form; unknown bits (a newer node's types) are
    /// read as every type, so that nothing is missed.
    pub fn from_bits(bits: u8) -> Self {
        if bits & !Self::ALL.0 == 0 {
            Self(bits)
        } else {
            Self::ALL
        }
    }
}

impl std::ops::BitOr for DataTypes {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for DataTypes {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for DataTypes {
    type Output = Self;

    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmailChange, MailboxId};

    #[test]
    fn names_round_trip_and_unknown_names_are_left_out() {
        assert_eq!(
            DataTypes::from_names(DataTypes::ALL.names()),
            DataTypes::ALL
        );
        for (t, n) in DataTypes::NAMES {
            assert_eq!(DataTypes::from_name(n), Some(t));
            assert_eq!(t.names().collect::<Vec<_>>(), vec![n]);
        }
        assert_eq!(DataTypes::from_name("email"), None);
        assert_eq!(
            DataTypes::from_names(["Email", "Nope", "", "Mailbox"]),
            DataTypes::EMAIL | DataTypes::MAILBOX
        );
        assert!(DataTypes::from_names(["Nope"]).is_empty());
    }

    #[test]
    fn wire_bits_round_trip_and_unknown_bits_mean_everything() {
        for bits in 0..=DataTypes::ALL.bits() {
            assert_eq!(DataTypes::from_bits(bits).bits(), bits);
        }
        assert_eq!(DataTypes::from_bits(0x80), DataTypes::ALL);
    }

    #[test]
    fn change_log_entries_map_to_the_types_they_move() {
        let email = |thread_change| {
            ChangedObject::Email(EmailChange {
                email: 1,
                thread: 1,
                mailbox: MailboxId(1),
                uid: crate::store::Uid::FIRST,
                moved_from: None,
                thread_change,
            })
        };
        let flags = DataTypes::of(&email(None), ChangeKind::Updated);
        assert_eq!(flags, DataTypes::EMAIL | DataTypes::MAILBOX);
        let new = DataTypes::of(&email(Some(ChangeKind::Created)), ChangeKind::Created);
        assert!(new.contains(DataTypes::MAIL | DataTypes::QUOTA));
        assert!(!new.intersects(DataTypes::CERTIFICATE));
        assert_eq!(
            DataTypes::of(&ChangedObject::Settings, ChangeKind::Updated),
            DataTypes::ENCRYPTION_SETTINGS
        );
        assert!(
            !DataTypes::of(&ChangedObject::Mailbox(MailboxId(3)), ChangeKind::Created)
                .intersects(DataTypes::EMAIL)
        );
    }
}
