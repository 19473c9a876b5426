//! Topic authorization: who may follow which topic, with the answers the operations give about
//! the same resources (`getOrderById`: 404 for no such order, 403 for someone else's).

use petstore_api::{
    Challenge, Ctx, SubscribeError, Subscriptions, Topic,
    error::{Forbidden, Unauthorized},
    operations::Scope,
};

use super::{PetStore, access::owner_or};
use crate::rules::order_not_found;

impl Subscriptions for PetStore {
    async fn authorize_topic(&self, ctx: &Ctx, topic: &Topic) -> Result<(), SubscribeError> {
        let Some(caller) = ctx.principal.as_deref() else {
            return Err(Unauthorized(Challenge::Missing).into());
        };
        if let Some(scope) = topic.required_scope()
            && !caller.has_scope(scope)
        {
            return Err(
                Forbidden(format!("topic `{topic}` needs the `{scope}` permission")).into(),
            );
        }
        // Whoever manages orders follows any order, existing or not, without a store lookup.
        if let Topic::Order(id) = topic
            && !caller.has_scope(Scope::OrdersManage)
        {
            let owner = self
                .store
                .order_owner(*id)
                .await?
                .ok_or_else(|| order_not_found(*id))?;
            owner_or(ctx, &owner, Scope::OrdersManage, "this order")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use petstore_api::{
        ApiError, Challenge, Ctx, Principal, Role, Subscriptions, Topic,
        models::{Order, Pet},
        operations::*,
    };

    use crate::handlers::testing::pet_store;

    fn as_caller(principal: Principal) -> Ctx {
        Ctx {
            principal: Some(Arc::new(principal)),
            ..Ctx::default()
        }
    }

    fn customer(name: &str) -> Ctx {
        as_caller(Principal::service(name, Role::Customer))
    }

    fn admin() -> Ctx {
        as_caller(Principal::service("ops", Role::Admin))
    }

    /// Handlers with order 1 placed by the customer `alice`.
    async fn with_alices_order() -> crate::handlers::PetStore {
        let (handlers, _, _) = pet_store();
        let pet = Pet {
            id: Some(1),
            name: "Rex".to_owned(),
            category: None,
            photo_urls: Vec::new(),
            tags: None,
            status: None,
        };
        handlers
            .add_pet(&admin(), AddPetRequest { body: pet })
            .await
            .expect("the pet is added");
        let order = Order {
            id: Some(1),
            pet_id: 1,
            quantity: None,
            ship_date: None,
            status: None,
            complete: None,
        };
        handlers
            .place_order(&customer("alice"), PlaceOrderRequest { body: order })
            .await
            .expect("the order is placed");
        handlers
    }

    async fn answer(
        handlers: &crate::handlers::PetStore,
        ctx: &Ctx,
        topic: Topic,
    ) -> Result<(), ApiError> {
        handlers
            .authorize_topic(ctx, &topic)
            .await
            .map_err(ApiError::from)
    }

    #[tokio::test]
    async fn only_signed_in_callers_follow_topics() {
        let handlers = with_alices_order().await;
        assert_eq!(
            answer(&handlers, &Ctx::default(), Topic::Pets).await,
            Err(ApiError::Unauthorized {
                challenge: Challenge::Missing
            })
        );
        assert_eq!(
            answer(&handlers, &customer("bob"), Topic::Pets).await,
            Ok(())
        );
        assert_eq!(
            answer(&handlers, &customer("bob"), Topic::Pet(9)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn orders_and_inventory_need_their_scopes() {
        let handlers = with_alices_order().await;
        for topic in [Topic::Orders, Topic::Inventory] {
            let refused = answer(&handlers, &customer("alice"), topic.clone()).await;
            assert!(
                matches!(&refused, Err(ApiError::Forbidden(message)) if message.contains("permission")),
                "{topic}: {refused:?}"
            );
            assert_eq!(answer(&handlers, &admin(), topic).await, Ok(()));
        }
    }

    #[tokio::test]
    async fn an_order_is_followed_by_its_owner_or_a_manager_as_get_order_by_id_answers() {
        let handlers = with_alices_order().await;
        assert_eq!(
            answer(&handlers, &customer("alice"), Topic::Order(1)).await,
            Ok(())
        );
        assert_eq!(
            answer(&handlers, &customer("bob"), Topic::Order(1)).await,
            Err(ApiError::Forbidden(
                "this order belongs to someone else".to_owned()
            ))
        );
        assert_eq!(
            answer(&handlers, &customer("bob"), Topic::Order(2)).await,
            Err(ApiError::NotFound("order 2 not found".to_owned()))
        );
        assert_eq!(answer(&handlers, &admin(), Topic::Order(1)).await, Ok(()));
        assert_eq!(answer(&handlers, &admin(), Topic::Order(2)).await, Ok(()));
    }
}
