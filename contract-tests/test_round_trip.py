"""Create/read/update/delete round trips through a client generated from `openapi.yaml`.

Schemathesis proves each operation answers within its contract one request at a time; these tests
prove a real generated client can drive whole workflows: that request bodies it serialises are
accepted, that every answer deserialises into its typed model, and that the state changes the spec
promises (a pet reserved by an order, a user renamed, a deleted resource gone) are visible.

Credentials go in the generated configuration, as a user of the client would set them: the admin
service key (`PETSTORE_CONTRACT_API_KEY`) for the `api_key` scheme in every workflow but the
`auth` one, which starts without credentials and works only with the bearer tokens it obtains by
logging in as an admin user (`PETSTORE_CONTRACT_ADMIN_USER` / `PETSTORE_CONTRACT_ADMIN_PASSWORD`,
by default the demo data's administrator).

`run.py` generates the `petstore_client` package onto `PYTHONPATH` and sets `PETSTORE_BASE_URL`
and `PETSTORE_CONTRACT_API_KEY`.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import petstore_client
import pytest
from petstore_client import (
    AuthApi,
    Category,
    Order,
    OrderStatus,
    Pet,
    PetApi,
    PetStatus,
    RefreshRequest,
    StoreApi,
    Tag,
    TokenRequest,
    TokenResponse,
    User,
    UserApi,
)
from petstore_client.exceptions import ApiException, NotFoundException, UnauthorizedException

# The demo data's administrator, unless the environment names another admin user.
DEMO_ADMIN_USER = "admin"
DEMO_ADMIN_PASSWORD = "admin-password"


def configuration(**credentials) -> petstore_client.Configuration:
    """A client configuration for the server under test, with these credentials only."""
    base_url = os.environ["PETSTORE_BASE_URL"].rstrip("/")
    return petstore_client.Configuration(host=f"{base_url}/api/v3", **credentials)


@pytest.fixture(scope="module")
def api_client():
    """A client that sends the admin service key wherever an operation accepts `api_key`."""
    config = configuration()
    config.api_key["api_key"] = os.environ["PETSTORE_CONTRACT_API_KEY"]
    with petstore_client.ApiClient(config) as client:
        yield client


@pytest.fixture(scope="module")
def anonymous_client():
    """A client without credentials."""
    with petstore_client.ApiClient(configuration()) as client:
        yield client


def bearer_client(access_token: str) -> petstore_client.ApiClient:
    """A client that authenticates with this access token and nothing else."""
    return petstore_client.ApiClient(configuration(access_token=access_token))


def unique(prefix: str) -> str:
    """A name no earlier run (or Schemathesis case) has used, so tests can share a server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def assert_not_found(call, *args) -> None:
    """The call must fail with 404 and the spec's `ErrorResponse` body."""
    with pytest.raises(NotFoundException) as caught:
        call(*args)
    assert_error(caught.value, 404, "NOT_FOUND")


def assert_unauthorized(call, *args) -> None:
    """The call must fail with 401, the bearer challenge and the spec's `ErrorResponse` body."""
    with pytest.raises(UnauthorizedException) as caught:
        call(*args)
    assert_error(caught.value, 401, "UNAUTHORIZED")
    headers = {name.lower(): value for name, value in (caught.value.headers or {}).items()}
    assert headers.get("www-authenticate", "").startswith("Bearer"), (
        f"a 401 must carry a bearer challenge: {caught.value.headers!r}"
    )


def assert_error(exception: ApiException, status: int, error_type: str) -> None:
    """The exception carries the status and an `ErrorResponse` body of that status and type."""
    assert exception.status == status
    error = exception.data
    assert error is not None, f"{status} body is not an ErrorResponse: {exception.body!r}"
    assert error.code == status
    assert error.type == error_type
    assert error.message


def assert_fresh_tokens(tokens: TokenResponse) -> None:
    """A token answer as `TokenResponse` documents it: a JWT, its type and lifetimes ahead."""
    now = dt.datetime.now(dt.timezone.utc)
    assert tokens.access_token.count(".") == 2, "the access token is a JWT (three parts)"
    assert tokens.token_type == "Bearer"
    assert tokens.expires_in > 0
    assert tokens.expires_at > now
    assert tokens.refresh_token
    assert tokens.refresh_expires_at > now


def test_pet_add_read_update_find_delete(api_client):
    pets = PetApi(api_client)
    new_pet = Pet(
        name=unique("rex"),
        photo_urls=["https://images.example/rex.png"],
        category=Category(name="Dogs"),
        tags=[Tag(name="contract")],
        status=PetStatus.AVAILABLE,
    )

    created = pets.add_pet(new_pet)
    assert created.id is not None and created.id >= 1, "addPet must assign an id"
    assert created.name == new_pet.name
    assert created.photo_urls == new_pet.photo_urls
    assert created.status == PetStatus.AVAILABLE
    assert created.category is not None and created.category.name == "Dogs"
    assert [tag.name for tag in created.tags or []] == ["contract"]

    fetched = pets.get_pet_by_id(created.id)
    assert fetched == created

    renamed = unique("rex-sold")
    updated = pets.update_pet(
        Pet(id=created.id, name=renamed, photo_urls=[], status=PetStatus.SOLD)
    )
    assert updated.id == created.id
    assert updated.name == renamed
    assert updated.status == PetStatus.SOLD
    assert pets.get_pet_by_id(created.id) == updated

    sold = pets.find_pets_by_status(status=[PetStatus.SOLD])
    assert created.id in [pet.id for pet in sold]
    assert all(pet.status == PetStatus.SOLD for pet in sold)
    ids = [pet.id for pet in sold]
    assert ids == sorted(ids), "findPetsByStatus answers ordered by id"
    available = pets.find_pets_by_status(status=[PetStatus.AVAILABLE])
    assert created.id not in [pet.id for pet in available]

    pets.delete_pet(created.id)
    assert_not_found(pets.get_pet_by_id, created.id)
    assert_not_found(pets.delete_pet, created.id)


def test_user_create_login_read_update_delete(api_client):
    users = UserApi(api_client)
    username = unique("ada")
    password = "correct-horse-battery"
    new_user = User(
        username=username,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.org",
        password=password,
        phone="+44 20 7946 0000",
        user_status=1,
    )

    created = users.create_user(new_user)
    assert created.username == username
    assert created.id is not None and created.id >= 1
    assert created.password is None, "the password is write-only"

    login = users.login_user_with_http_info(username, password)
    assert login.status_code == 200
    token = login.data
    assert isinstance(token, str) and token.count(".") == 2, "a JWT has three parts"
    headers = {name.lower(): value for name, value in (login.headers or {}).items()}
    assert int(headers["x-rate-limit"]) > 0
    expires = dt.datetime.fromisoformat(headers["x-expires-after"].replace("Z", "+00:00"))
    assert expires > dt.datetime.now(dt.timezone.utc)

    fetched = users.get_user_by_name(username)
    assert fetched == created

    users.update_user(
        username,
        User(
            username=username,
            first_name="Augusta Ada",
            last_name="King",
            email="ada.king@example.org",
            phone="+44 20 7946 0001",
            user_status=2,
        ),
    )
    updated = users.get_user_by_name(username)
    assert updated.id == created.id
    assert (updated.first_name, updated.last_name) == ("Augusta Ada", "King")
    assert updated.email == "ada.king@example.org"
    assert updated.user_status == 2
    assert updated.password is None
    # An update without `password` keeps the old one.
    assert users.login_user(username, password).count(".") == 2

    users.delete_user(username)
    assert_not_found(users.get_user_by_name, username)
    assert_not_found(users.delete_user, username)


def test_store_place_read_inventory_delete_order(api_client):
    pets = PetApi(api_client)
    store = StoreApi(api_client)
    pet = pets.add_pet(Pet(name=unique("tom"), photo_urls=[], status=PetStatus.AVAILABLE))
    assert pet.id is not None
    pending_before = store.get_inventory().get("pending", 0)

    ship_date = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(days=2)
    placed = store.place_order(
        Order(
            pet_id=pet.id,
            quantity=2,
            ship_date=ship_date,
            status=OrderStatus.PLACED,
            complete=False,
        )
    )
    assert placed.id is not None and placed.id >= 1, "placeOrder must assign an id"
    assert placed.pet_id == pet.id
    assert placed.quantity == 2
    assert placed.ship_date == ship_date
    assert placed.status == OrderStatus.PLACED
    assert pets.get_pet_by_id(pet.id).status == PetStatus.PENDING, "an order reserves its pet"

    assert store.get_order_by_id(placed.id) == placed

    inventory = store.get_inventory()
    assert set(inventory) >= {"available", "pending", "sold"}, "every pet status is counted"
    assert all(count >= 0 for count in inventory.values())
    assert inventory["pending"] == pending_before + 1

    store.delete_order(placed.id)
    assert_not_found(store.get_order_by_id, placed.id)
    assert_not_found(store.delete_order, placed.id)
    assert pets.get_pet_by_id(pet.id).status == PetStatus.AVAILABLE, (
        "deleting an undelivered order releases its pet"
    )

    pets.delete_pet(pet.id)


def test_auth_token_grants_bearer_access_and_refresh_rotates_it(anonymous_client):
    admin = os.environ.get("PETSTORE_CONTRACT_ADMIN_USER", DEMO_ADMIN_USER)
    password = os.environ.get("PETSTORE_CONTRACT_ADMIN_PASSWORD", DEMO_ADMIN_PASSWORD)
    auth = AuthApi(anonymous_client)
    # Without credentials the secured operation is refused, so what follows proves the tokens.
    assert_unauthorized(StoreApi(anonymous_client).get_inventory)

    first = auth.create_token(TokenRequest(username=admin, password=password))
    assert_fresh_tokens(first)
    with bearer_client(first.access_token) as client:
        inventory = StoreApi(client).get_inventory()
    assert set(inventory) >= {"available", "pending", "sold"}

    second = auth.refresh_token(RefreshRequest(refresh_token=first.refresh_token))
    assert_fresh_tokens(second)
    assert second.access_token != first.access_token
    assert second.refresh_token != first.refresh_token, "refresh tokens rotate"
    with bearer_client(second.access_token) as client:
        assert set(StoreApi(client).get_inventory()) >= {"available", "pending", "sold"}

    # A refresh token works once; presenting the spent one again revokes the whole session.
    assert_unauthorized(auth.refresh_token, RefreshRequest(refresh_token=first.refresh_token))
    with bearer_client(second.access_token) as client:
        assert_unauthorized(StoreApi(client).get_inventory)
    assert_unauthorized(auth.refresh_token, RefreshRequest(refresh_token=second.refresh_token))


def test_auth_token_refuses_a_wrong_password(anonymous_client):
    admin = os.environ.get("PETSTORE_CONTRACT_ADMIN_USER", DEMO_ADMIN_USER)
    auth = AuthApi(anonymous_client)
    assert_unauthorized(
        auth.create_token, TokenRequest(username=admin, password="not-the-password")
    )
