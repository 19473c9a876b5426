//! Roles: what a principal is, coarsely. The permissions (spec scopes) a role grants are decided
//! here and nowhere else.

use std::{fmt, str::FromStr};

use crate::operations::Scope;

/// A role a user or a service key can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// What `createUser` gives: manage one's own user and orders.
    Customer,
    /// Manages pets, every order and every user.
    Admin,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Customer, Role::Admin];

    /// The name used in tokens and configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected `customer` or `admin`)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

impl Role {
    /// The permissions (spec scopes) the role grants. Admins hold every scope the spec defines,
    /// so a scope added to the spec is an admin's without a change here; a customer's are
    /// listed, so a renamed or removed scope breaks the build here.
    #[must_use]
    pub fn scopes(self) -> &'static [Scope] {
        match self {
            Role::Customer => &[
                Scope::OrdersRead,
                Scope::OrdersWrite,
                Scope::UsersRead,
                Scope::UsersWrite,
            ],
            Role::Admin => &Scope::ALL,
        }
    }
}
