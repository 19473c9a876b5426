//! Ownership rules: what a caller may do with a resource once the operation's permission has
//! been checked at the edge. A permission like `orders:read` lets a customer in; whose orders
//! they may read is decided here.

use petstore_api::{
    Ctx, Principal,
    error::{Failure, Forbidden},
    operations::Scope,
};

/// The caller, if they own the resource (`owner` is their [`Principal::owner_key`]) or hold
/// `any`, the scope that reaches everyone's resources.
///
/// # Errors
/// [`Forbidden`] naming `what` otherwise; `ServerError::Internal` if the operation let an
/// anonymous caller in (a spec/handler mismatch).
pub(super) fn owner_or<'a>(
    ctx: &'a Ctx,
    owner: &str,
    any: Scope,
    what: &str,
) -> Result<&'a Principal, Failure<Forbidden>> {
    let caller = ctx.caller()?;
    if caller.owner_key() == owner || caller.has_scope(any) {
        Ok(caller)
    } else {
        Err(Failure::Refused(Forbidden(format!(
            "{what} belongs to someone else"
        ))))
    }
}

/// The caller, if they are the user `username` or hold `any`.
///
/// Unlike [`owner_or`], a service key is never "the user" even when its name matches.
///
/// # Errors
/// As [`owner_or`].
pub(super) fn self_or<'a>(
    ctx: &'a Ctx,
    username: &str,
    any: Scope,
) -> Result<&'a Principal, Failure<Forbidden>> {
    let caller = ctx.caller()?;
    if caller.is_user(username) || caller.has_scope(any) {
        Ok(caller)
    } else {
        Err(Failure::Refused(Forbidden(
            "customers may only act on their own user".to_owned(),
        )))
    }
}
