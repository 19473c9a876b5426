//! Business rules: pure functions from the records a step read and what the request asks, to
//! what the step writes or why it refuses.
//!
//! A step that touches several records (placing an order reserves its pet) must be decided
//! inside the store's atomic step, so the stores call these functions there; the handlers call
//! them where no store step is involved. Written once, every store decides alike, and the
//! conformance suite checks that each store applies them, not what they are. Nothing here reads
//! or writes a store.

use chrono::{DateTime, Utc};
use petstore_api::{
    error::{Conflict, Invalid, NotFound},
    models::{Order, OrderStatus, Pet, PetStatus},
};

/// The refusal for a missing pet.
pub fn pet_not_found(id: i64) -> NotFound {
    NotFound(format!("pet {id} not found"))
}

/// The refusal for a missing order.
pub fn order_not_found(id: i64) -> NotFound {
    NotFound(format!("order {id} not found"))
}

/// The refusal for a missing user.
pub fn user_not_found(username: &str) -> NotFound {
    NotFound(format!("user {username} not found"))
}

/// What placing an order writes: the order as stored and its pet's new status.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The order with its id and defaults filled in.
    pub order: Order,
    /// The pet's status from now on: `pending` while the order is open, `sold` once delivered.
    pub pet_status: PetStatus,
    /// Whether the order holds its pet (it is not delivered yet): deleting it may release the
    /// pet.
    pub holds_pet: bool,
}

/// Places `order` under `id` for `pet` (`placeOrder`).
///
/// The pet must be `available` (a pet without status is not). Defaults: `status` `placed`,
/// `quantity` 1, `complete` false. A `placed` or `approved` order marks the pet `pending`; a
/// `delivered` one marks it `sold` and is always `complete`.
///
/// # Errors
/// [`Conflict`] when the pet is not available.
pub fn place_order(mut order: Order, id: i64, pet: &Pet) -> Result<Placement, Conflict> {
    if pet.status != Some(PetStatus::Available) {
        return Err(Conflict(format!("pet {} is not available", order.pet_id)));
    }
    let status = order.status.unwrap_or(OrderStatus::Placed);
    let delivered = status == OrderStatus::Delivered;
    order.id = Some(id);
    order.status = Some(status);
    order.quantity = Some(order.quantity.unwrap_or(1));
    order.complete = Some(delivered || order.complete.unwrap_or(false));
    Ok(Placement {
        holds_pet: holds_pet(&order),
        order,
        pet_status: if delivered {
            PetStatus::Sold
        } else {
            PetStatus::Pending
        },
    })
}

/// The fields of an order that `updateOrder` may change; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderUpdate {
    /// The new status; it may only move forward (`placed` → `approved` → `delivered`).
    pub status: Option<OrderStatus>,
    /// The new shipping date.
    pub ship_date: Option<DateTime<Utc>>,
    /// The new completion flag. Ignored once the order is `delivered`: a delivered order is
    /// always complete.
    pub complete: Option<bool>,
}

/// What updating an order writes.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderChange {
    /// The order as stored from now on.
    pub order: Order,
    /// Whether this update delivered the order: it stops holding its pet, and the pet, if it
    /// still exists, is `sold`.
    pub delivers: bool,
}

/// The position of a status on the one-way road of an order.
fn stage(status: OrderStatus) -> u8 {
    match status {
        OrderStatus::Placed => 0,
        OrderStatus::Approved => 1,
        OrderStatus::Delivered => 2,
    }
}

/// `current` changed by `update` (`updateOrder`): the status only moves forward, delivering
/// completes the order.
///
/// # Errors
/// [`Invalid`] on `status` for a step back.
pub fn update_order(current: &Order, update: &OrderUpdate) -> Result<OrderChange, Invalid> {
    let old_status = current.status.unwrap_or(OrderStatus::Placed);
    let new_status = update.status.unwrap_or(old_status);
    if stage(new_status) < stage(old_status) {
        return Err(Invalid::field(
            "status",
            format!(
                "an order that is {} cannot go back to {}",
                old_status.as_str(),
                new_status.as_str()
            ),
        ));
    }
    let delivered = new_status == OrderStatus::Delivered;
    let mut order = current.clone();
    order.status = Some(new_status);
    if update.ship_date.is_some() {
        order.ship_date = update.ship_date;
    }
    order.complete = Some(delivered || update.complete.or(order.complete).unwrap_or(false));
    Ok(OrderChange {
        order,
        delivers: delivered && old_status != OrderStatus::Delivered,
    })
}

/// Whether an order holds its pet: it does until it is delivered. Deleting the last order that
/// holds a pet releases the pet ([`released_pet_status`]).
pub fn holds_pet(order: &Order) -> bool {
    order.status != Some(OrderStatus::Delivered)
}

/// The status a pet released by its last holding order goes back to: a `pending` pet is
/// `available` again; any other status (sold meanwhile, changed by hand) stays.
pub fn released_pet_status(pet: &Pet) -> Option<PetStatus> {
    (pet.status == Some(PetStatus::Pending)).then_some(PetStatus::Available)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pet(status: Option<PetStatus>) -> Pet {
        Pet {
            id: Some(1),
            name: "rex".into(),
            category: None,
            photo_urls: Vec::new(),
            tags: None,
            status,
        }
    }

    fn order(status: Option<OrderStatus>) -> Order {
        Order {
            id: None,
            pet_id: 1,
            quantity: None,
            ship_date: None,
            status,
            complete: None,
        }
    }

    #[test]
    fn placing_fills_the_defaults_and_reserves_an_available_pet() {
        let placed = place_order(order(None), 7, &pet(Some(PetStatus::Available))).expect("ok");
        assert_eq!(placed.order.id, Some(7));
        assert_eq!(placed.order.status, Some(OrderStatus::Placed));
        assert_eq!(placed.order.quantity, Some(1));
        assert_eq!(placed.order.complete, Some(false));
        assert_eq!(placed.pet_status, PetStatus::Pending);
        assert!(placed.holds_pet);
    }

    #[test]
    fn a_delivered_order_sells_its_pet_and_is_complete() {
        let placed = place_order(
            order(Some(OrderStatus::Delivered)),
            7,
            &pet(Some(PetStatus::Available)),
        )
        .expect("ok");
        assert_eq!(placed.pet_status, PetStatus::Sold);
        assert_eq!(placed.order.complete, Some(true));
        assert!(!placed.holds_pet);
    }

    #[test]
    fn only_available_pets_can_be_ordered() {
        for status in [None, Some(PetStatus::Pending), Some(PetStatus::Sold)] {
            let refused = place_order(order(None), 7, &pet(status)).expect_err("refused");
            assert_eq!(refused.0, "pet 1 is not available");
        }
    }

    #[test]
    fn an_order_only_moves_forward_and_delivering_completes_it() {
        let approved = order(Some(OrderStatus::Approved));
        let back = OrderUpdate {
            status: Some(OrderStatus::Placed),
            ..OrderUpdate::default()
        };
        let refused = update_order(&approved, &back).expect_err("refused");
        assert_eq!(refused.errors[0].path, "status");
        let deliver = OrderUpdate {
            status: Some(OrderStatus::Delivered),
            complete: Some(false),
            ..OrderUpdate::default()
        };
        let changed = update_order(&approved, &deliver).expect("ok");
        assert!(changed.delivers);
        assert_eq!(changed.order.complete, Some(true));
        let again = update_order(&changed.order, &deliver).expect("ok");
        assert!(!again.delivers, "delivering twice delivers once");
    }

    #[test]
    fn open_orders_hold_their_pet_and_a_release_makes_a_pending_pet_available() {
        assert!(holds_pet(&order(Some(OrderStatus::Placed))));
        assert!(holds_pet(&order(Some(OrderStatus::Approved))));
        assert!(!holds_pet(&order(Some(OrderStatus::Delivered))));
        assert_eq!(
            released_pet_status(&pet(Some(PetStatus::Pending))),
            Some(PetStatus::Available)
        );
        assert_eq!(released_pet_status(&pet(Some(PetStatus::Sold))), None);
    }
}
