//! Store orders and the inventory.

use std::collections::BTreeMap;

use super::{Outcome, PetStore, access::owner_or};
use crate::{
    api::{Ctx, Serialized, operations::*},
    error::ApiError,
    events::Event,
    store::OrderUpdate,
};

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("order {id} not found"))
}

pub(super) async fn get_inventory(this: &PetStore) -> Outcome<GetInventoryResponse> {
    Ok(GetInventoryResponse::Ok(inventory(this).await?))
}

/// The pet counts per status as `getInventory` answers them; `inventory.changed` events carry
/// the same JSON.
pub(super) async fn inventory(this: &PetStore) -> Outcome<Serialized<BTreeMap<String, i32>>> {
    let counts = this.store.inventory().await?;
    let inventory: BTreeMap<String, i32> = counts
        .into_iter()
        .map(|(status, count)| {
            (
                status.as_str().to_owned(),
                i32::try_from(count).unwrap_or(i32::MAX),
            )
        })
        .collect();
    Ok(Serialized::new(&inventory))
}

pub(super) async fn place_order(
    this: &PetStore,
    ctx: &Ctx,
    request: PlaceOrderRequest,
) -> Outcome<PlaceOrderResponse> {
    let owner = ctx.caller()?.owner_key();
    let written = this.store.place_order(request.body, &owner).await?;
    this.publish_order(Event::OrderPlaced, &written).await;
    Ok(PlaceOrderResponse::Ok(written.order.json.clone()))
}

pub(super) async fn get_order_by_id(
    this: &PetStore,
    ctx: &Ctx,
    request: GetOrderByIdRequest,
) -> Outcome<GetOrderByIdResponse> {
    let (order, owner) = this
        .store
        .get_order_with_owner(request.order_id)
        .await?
        .ok_or_else(|| not_found(request.order_id))?;
    owner_or(ctx, &owner, Scope::OrdersManage, "this order")?;
    Ok(GetOrderByIdResponse::Ok(order.json.clone()))
}

pub(super) async fn update_order(
    this: &PetStore,
    request: UpdateOrderRequest,
) -> Outcome<UpdateOrderResponse> {
    let body = request.body;
    if body.id.is_some_and(|id| id != request.order_id) {
        return Err(ApiError::invalid_field(
            "id",
            "must match the orderId in the path",
        ));
    }
    let current = this
        .store
        .get_order(request.order_id)
        .await?
        .ok_or_else(|| not_found(request.order_id))?;
    if body.pet_id != current.value.pet_id {
        return Err(ApiError::invalid_field(
            "petId",
            "an order's pet cannot change",
        ));
    }
    if body
        .quantity
        .is_some_and(|quantity| Some(quantity) != current.value.quantity)
    {
        return Err(ApiError::invalid_field(
            "quantity",
            "an order's quantity cannot change",
        ));
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
) -> Outcome<DeleteOrderResponse> {
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
