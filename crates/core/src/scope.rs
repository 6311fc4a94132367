//! Who may see a conversation, from a contact's side.

use crate::ids::{ContactId, MessengerId, SiteId};

/// What a contact's access token opens: its own conversations in one messenger of one site,
/// and either its preview conversations (a test from the admin pages) or its real ones.
/// Every "may this contact see this conversation" question is answered here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContactScope {
    pub site: SiteId,
    pub contact: ContactId,
    pub messenger: MessengerId,
    pub preview: bool,
}

impl ContactScope {
    /// Whether a conversation with these owners lies in this scope.
    pub fn owns(
        &self,
        site: SiteId,
        contact: ContactId,
        messenger: MessengerId,
        preview: bool,
    ) -> bool {
        self.site == site
            && self.contact == contact
            && self.messenger == messenger
            && self.preview == preview
    }

    /// Whether a live event of this messenger and kind may reach the contact's socket (the
    /// contact's own topic carries events of all its messengers).
    pub fn hears(&self, messenger: MessengerId, preview: bool) -> bool {
        self.messenger == messenger && self.preview == preview
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_site_contact_messenger_and_kind() {
        let scope = ContactScope {
            site: SiteId(10_000),
            contact: ContactId::new(),
            messenger: MessengerId::new(),
            preview: false,
        };
        let s = &scope;
        assert!(s.owns(s.site, s.contact, s.messenger, false));
        assert!(!s.owns(SiteId(10_001), s.contact, s.messenger, false));
        assert!(!s.owns(s.site, ContactId::new(), s.messenger, false));
        assert!(!s.owns(s.site, s.contact, MessengerId::new(), false));
        assert!(!s.owns(s.site, s.contact, s.messenger, true));
    }
}
