//! Store orders and the inventory.

use std::collections::BTreeMap;

use petstore_api::{
    Ctx, Serialized,
    error::{Failure, Invalid},
    operations::*,
};

use super::{PetStore, access::owner_or};
use crate::{
    events::Event,
    rules::order_not_found,
    store::{Inventory, OrderUpdate},
};

pub(super) async fn get_inventory(
    this: &PetStore,
) -> Result<GetInventoryResponse, GetInventoryError> {
    Ok(GetInventoryResponse::Ok(inventory(this).await?))
}

/// The pet counts per status as `getInventory` answers them; `inventory.changed` events carry
/// the same JSON.
pub(super) async fn inventory(
    this: &PetStore,
) -> Result<Serialized<BTreeMap<String, i32>>, Failure> {
    Ok(render_inventory(this.store.inventory().await?))
}

/// The inventory's JSON, as `getInventory` answers it, from the store's counts.
pub(super) fn render_inventory(counts: Inventory) -> Serialized<BTreeMap<String, i32>> {
    let inventory: BTreeMap<String, i32> = counts
        .into_iter()
        .map(|(status, count)| {
            (
                status.as_str().to_owned(),
                i32::try_from(count).unwrap_or(i32::MAX),
            )
        })
        .collect();
    Serialized::new(&inventory)
}

pub(super) async fn place_order(
    this: &PetStore,
    ctx: &Ctx,
    request: PlaceOrderRequest,
) -> Result<PlaceOrderResponse, PlaceOrderError> {
    let owner = ctx.caller()?.owner_key();
    let written = this.store.place_order(request.body, &owner).await?;
    this.publish_order(Event::OrderPlaced, &written).await;
    Ok(PlaceOrderResponse::Ok(written.order.json.clone()))
}

pub(super) async fn get_order_by_id(
    this: &PetStore,
    ctx: &Ctx,
    request: GetOrderByIdRequest,
) -> Result<GetOrderByIdResponse, GetOrderByIdError> {
    let (order, owner) = this
        .store
        .get_order_with_owner(request.order_id)
        .await?
        .ok_or_else(|| order_not_found(request.order_id))?;
    owner_or(ctx, &owner, Scope::OrdersManage, "this order")?;
    Ok(GetOrderByIdResponse::Ok(order.json.clone()))
}

pub(super) async fn update_order(
    this: &PetStore,
    request: UpdateOrderRequest,
) -> Result<UpdateOrderResponse, UpdateOrderError> {
    let body = request.body;
    if body.id.is_some_and(|id| id != request.order_id) {
        return Err(Invalid::field("id", "must match the orderId in the path").into());
    }
    let current = this
        .store
        .get_order(request.order_id)
        .await?
        .ok_or_else(|| order_not_found(request.order_id))?;
    if body.pet_id != current.value.pet_id {
        return Err(Invalid::field("petId", "an order's pet cannot change").into());
    }
    if body
        .quantity
        .is_some_and(|quantity| Some(quantity) != current.value.quantity)
    {
        return Err(Invalid::field("quantity", "an order's quantity cannot change").into());
    }
    let update = OrderUpdate {
        status: body.status,
        ship_date: body.ship_date,
        complete: body.complete,
    };
    let written = this.store.update_order(request.order_id, update).await?;
    this.publish_order(Event::OrderUpdated, &written).await;
    Ok(UpdateOrderResponse::Ok(written.order.json.clone()))
}

pub(super) async fn delete_order(
    this: &PetStore,
    ctx: &Ctx,
    request: DeleteOrderRequest,
) -> Result<DeleteOrderResponse, DeleteOrderError> {
    // Customers cancel only their own orders; the store checks the owner in the same step as
    // the delete.
    let caller = ctx.caller()?;
    let owner = caller.owner_key();
    let only_owner = (!caller.has_scope(Scope::OrdersManage)).then_some(owner.as_str());
    let written = this
        .store
        .delete_order(request.order_id, only_owner)
        .await?;
    this.publish_order_deleted(request.order_id, &written).await;
    Ok(DeleteOrderResponse::Ok)
}
