//! Who is calling: the identity a verified credential stands for, with the permissions it holds.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::{Role, operations::Scope};

/// A set of [`Scope`]s as a bit set: checking a permission on every authorized request is one
/// mask test.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeSet(u64);

// Every scope needs a bit.
const _: () = assert!(Scope::ALL.len() <= 64);

impl ScopeSet {
    /// Adds a scope.
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= Self::bit(scope);
    }

    /// Whether the set holds `scope`.
    #[must_use]
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    /// The scopes in the set, in [`Scope::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |scope| self.contains(*scope))
    }

    fn bit(scope: Scope) -> u64 {
        1 << (scope as u32)
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Self {
        let mut set = Self::default();
        for scope in scopes {
            set.insert(scope);
        }
        set
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An access token of a user.
    AccessToken {
        /// Its `jti`.
        token_id: String,
        /// Its session, if it was issued within one.
        session_id: Option<String>,
        /// When it expires.
        expires_at: DateTime<Utc>,
    },
    /// A service key from the configuration.
    ServiceKey,
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The username, or the service key's name.
    pub subject: String,
    /// What was presented.
    pub credential: Credential,
    /// The roles it holds.
    pub roles: Vec<Role>,
    scopes: ScopeSet,
}

impl Principal {
    /// A user signed in with an access token, holding `roles` (by name) and the extra
    /// permissions `perms` (scope names). Unknown role and permission names (from a newer or
    /// older server sharing the keys) grant nothing.
    #[must_use]
    pub fn user<R, P>(subject: String, credential: Credential, roles: R, perms: P) -> Self
    where
        R: IntoIterator,
        R::Item: AsRef<str>,
        P: IntoIterator,
        P::Item: AsRef<str>,
    {
        let roles: Vec<Role> = roles
            .into_iter()
            .filter_map(|role| role.as_ref().parse().ok())
            .collect();
        let scopes = roles
            .iter()
            .flat_map(|role| role.scopes().iter().copied())
            .chain(
                perms
                    .into_iter()
                    .filter_map(|name| Scope::from_name(name.as_ref())),
            )
            .collect();
        Self {
            subject,
            credential,
            roles,
            scopes,
        }
    }

    /// A service key with its configured role.
    #[must_use]
    pub fn service(name: &str, role: Role) -> Self {
        Self {
            subject: name.to_owned(),
            credential: Credential::ServiceKey,
            roles: vec![role],
            scopes: role.scopes().iter().copied().collect(),
        }
    }

    /// Whether the caller holds a permission.
    #[must_use]
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// Every permission the caller holds.
    #[must_use]
    pub fn scopes(&self) -> ScopeSet {
        self.scopes
    }

    /// The name the caller owns records and is rate-limited under. A user's is the username;
    /// a service key's is prefixed with `service-key:`, which no username can contain, so
    /// signing up under a key's name gains neither its orders nor its rate budget.
    #[must_use]
    pub fn owner_key(&self) -> String {
        match self.credential {
            Credential::AccessToken { .. } => self.subject.clone(),
            Credential::ServiceKey => format!("service-key:{}", self.subject),
        }
    }

    /// Whether the caller is the user `username` (service keys are never a user).
    #[must_use]
    pub fn is_user(&self, username: &str) -> bool {
        matches!(self.credential, Credential::AccessToken { .. }) && self.subject == username
    }
}

#[cfg(test)]
mod tests {
    use super::{Credential, Principal, ScopeSet};
    use crate::{Role, operations::Scope};

    fn alice(roles: &[&str], perms: &[&str]) -> Principal {
        Principal::user(
            "alice".to_owned(),
            Credential::AccessToken {
                token_id: "jti-1".to_owned(),
                session_id: Some("sid-1".to_owned()),
                expires_at: chrono::DateTime::from_timestamp(2_000_000_000, 0).expect("in range"),
            },
            roles,
            perms,
        )
    }

    #[test]
    fn scopes_come_from_roles_plus_extra_permissions_and_unknown_names_grant_nothing() {
        let principal = alice(
            &["customer", "superuser"],
            &["inventory:read", "everything"],
        );
        assert_eq!(principal.roles, vec![Role::Customer]);
        assert!(principal.has_scope(Scope::OrdersRead));
        assert!(principal.has_scope(Scope::InventoryRead));
        assert!(!principal.has_scope(Scope::PetsWrite));
    }

    #[test]
    fn an_admin_holds_every_scope_and_a_service_key_is_never_a_user() {
        let admin = Principal::service("bot", Role::Admin);
        assert!(Scope::ALL.iter().all(|scope| admin.has_scope(*scope)));
        assert!(!admin.is_user("bot"));
        assert_eq!(admin.owner_key(), "service-key:bot");
        let user = alice(&["customer"], &[]);
        assert!(user.is_user("alice"));
        assert!(!user.is_user("bob"));
        assert_eq!(user.owner_key(), "alice");
    }

    #[test]
    fn scope_sets_hold_exactly_what_was_inserted() {
        let set: ScopeSet = [Scope::PetsWrite, Scope::UsersRead].into_iter().collect();
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![Scope::PetsWrite, Scope::UsersRead]
        );
        assert!(!set.contains(Scope::OrdersManage));
    }
}
