//! Authorization over HTTP: the matrix of README.md ("**The matrix**") walked cell by cell, the
//! roles of service keys, and ownership that must survive a user's rename.
//!
//! The matrix is read from the README at build time, so the documentation cannot drift from
//! the server: every operation the table lists is performed as every caller (anonymous, a
//! customer, an admin, the admin service key) with an otherwise valid request on fresh
//! fixtures, and the status must be the cell's. "own" and "other" cells are performed twice, on
//! the customer's own order or user and on someone else's.

use std::{
    collections::BTreeSet,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use petstore_api::operations::OPERATIONS;
use petstore_testkit::app::*;
use petstore_ws::config::Secret;
use reqwest::{Method, RequestBuilder, header};
use serde_json::{Value, json};
use tokio::{sync::Semaphore, task::JoinSet};

/// The README, where the matrix is documented.
const README: &str = include_str!("../../README.md");

/// The heading the matrix table follows.
const MATRIX_HEADING: &str = "**The matrix**";

/// The columns of the table, in order.
const COLUMNS: [&str; 5] = [
    "Operation",
    "anonymous",
    "customer",
    "admin",
    "api key (admin)",
];

/// The administrator bootstrapped from the configuration.
const ADMIN_USER: &str = "matrix-admin";
const ADMIN_PASSWORD: &str = "matrix-admin-password";

/// The password of every user the tests create.
const PASSWORD: &str = "correct-horse-battery";

/// Operations whose outcome depends on who owns the order they act on.
const ORDER_OPERATIONS: [&str; 3] = ["getOrderById", "updateOrder", "deleteOrder"];

/// Operations whose outcome depends on which user they act on.
const USER_OPERATIONS: [&str; 3] = ["getUserByName", "updateUser", "deleteUser"];

// ---- the table ----

/// What a cell promises for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// "200": any 2xx.
    Allowed,
    /// "401" or "403": exactly that error.
    Refused(u16),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed => f.write_str("2xx"),
            Self::Refused(status) => write!(f, "{status}"),
        }
    }
}

/// One cell: the outcome on the caller's own resource and on someone else's (the same for
/// cells that do not distinguish).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    own: Expect,
    other: Expect,
    /// Whether the cell says "own" and "other".
    split: bool,
}

/// One row of the table.
#[derive(Debug)]
struct Row {
    operation: String,
    /// Per caller, in [`Caller::ALL`] order.
    cells: [Cell; 4],
}

fn split_row(line: &str) -> Vec<&str> {
    let line = line.trim();
    let inner = line.strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.split('|').map(str::trim).collect()
}

fn parse_status(text: &str) -> Result<Expect, String> {
    match text {
        "200" => Ok(Expect::Allowed),
        "401" => Ok(Expect::Refused(401)),
        "403" => Ok(Expect::Refused(403)),
        other => Err(format!("unknown status {other:?}")),
    }
}

fn parse_cell(text: &str) -> Result<Cell, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    match parts.as_slice() {
        [status] => {
            let expect = parse_status(status)?;
            Ok(Cell {
                own: expect,
                other: expect,
                split: false,
            })
        }
        [first, second] => {
            let (mut own, mut other) = (None, None);
            for part in [first, second] {
                match part.split_once(' ') {
                    Some((status, "own")) => own = Some(parse_status(status)?),
                    Some((status, "other")) => other = Some(parse_status(status)?),
                    _ => return Err(format!("expected `STATUS own` or `STATUS other`: {part:?}")),
                }
            }
            match (own, other) {
                (Some(own), Some(other)) => Ok(Cell {
                    own,
                    other,
                    split: true,
                }),
                _ => Err(format!("needs one `own` and one `other`: {text:?}")),
            }
        }
        _ => Err(format!("cannot read the cell {text:?}")),
    }
}

/// The rows of the matrix table in `readme`; a table that cannot be read fails the test.
fn matrix(readme: &str) -> Vec<Row> {
    let Some(start) = readme.find(MATRIX_HEADING) else {
        panic!("README.md has no {MATRIX_HEADING} section");
    };
    let mut lines = readme[start..]
        .lines()
        .skip_while(|line| !line.trim_start().starts_with('|'));
    let Some(head) = lines.next() else {
        panic!("no table after {MATRIX_HEADING} in README.md");
    };
    assert_eq!(split_row(head), COLUMNS, "the columns of the matrix");
    let separator = lines.next().unwrap_or_default();
    assert!(
        split_row(separator)
            .iter()
            .all(|cell| !cell.is_empty() && cell.chars().all(|c| matches!(c, '-' | ':'))),
        "no separator line under the matrix header: {separator:?}"
    );
    let rows: Vec<Row> = lines
        .take_while(|line| line.trim_start().starts_with('|'))
        .map(|line| {
            let cells = split_row(line);
            assert_eq!(
                cells.len(),
                COLUMNS.len(),
                "cells in the matrix row {line:?}"
            );
            let Some(operation) = cells[0]
                .strip_prefix('`')
                .and_then(|name| name.strip_suffix('`'))
            else {
                panic!("the operation of {line:?} is not an `operationId`");
            };
            let parsed: Vec<Cell> = cells[1..]
                .iter()
                .map(|cell| {
                    parse_cell(cell).unwrap_or_else(|error| panic!("matrix row {line:?}: {error}"))
                })
                .collect();
            let Ok(cells) = <[Cell; 4]>::try_from(parsed) else {
                panic!("matrix row {line:?} does not have four callers");
            };
            Row {
                operation: operation.to_owned(),
                cells,
            }
        })
        .collect();
    assert!(!rows.is_empty(), "the matrix has no rows");
    rows
}

#[test]
fn matrix_cells_are_read_as_documented() {
    let table = "intro\n\n**The matrix**, text.\n\n\
        | Operation | anonymous | customer | admin | api key (admin) |\n\
        |---|---|---|---|---|\n\
        | `getOrderById` | 401 | 200 own, 403 other | 200 | 200 |\n\
        | `addPet` | 401 | 403 | 200 | 200 |\n\
        \nafter";
    let rows = matrix(table);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].operation, "getOrderById");
    assert_eq!(
        rows[0].cells[1],
        Cell {
            own: Expect::Allowed,
            other: Expect::Refused(403),
            split: true
        }
    );
    assert_eq!(
        rows[1].cells[0],
        Cell {
            own: Expect::Refused(401),
            other: Expect::Refused(401),
            split: false
        }
    );
    assert!(parse_cell("302").is_err());
    assert!(parse_cell("200 own").is_err());
    assert!(parse_cell("200 own, 403 mine").is_err());
}

#[test]
fn the_matrix_lists_exactly_the_operations_of_the_server() {
    let rows = matrix(README);
    let listed: Vec<&str> = rows.iter().map(|row| row.operation.as_str()).collect();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed.len(),
        "an operation is listed twice: {listed:?}"
    );
    let served: BTreeSet<&str> = OPERATIONS.iter().map(|operation| operation.id).collect();
    let missing: Vec<&&str> = served.difference(&unique).collect();
    let unknown: Vec<&&str> = unique.difference(&served).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md matrix vs the server: missing from the table {missing:?}, \
         not operations of the server {unknown:?}"
    );
}

// ---- callers and fixtures ----

/// Who performs a request: a column of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Customer,
    Admin,
    ApiKey,
}

impl Caller {
    /// In column order.
    const ALL: [Self; 4] = [Self::Anonymous, Self::Customer, Self::Admin, Self::ApiKey];
}

/// Whose resource an ownership-dependent request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The calling customer's own order or user.
    Own,
    /// One of another customer.
    Other,
}

/// A user with a session.
struct Customer {
    username: String,
    token: String,
}

/// The credentials of one cell's caller.
struct Acting {
    caller: Caller,
    /// The customer, for [`Caller::Customer`].
    customer: Option<Customer>,
    /// The bearer token sent, for customers and the admin.
    token: Option<String>,
}

/// One server for the whole matrix; every cell gets fresh users, sessions, pets and orders.
struct Matrix {
    app: TestApp,
    next: AtomicUsize,
}

impl Matrix {
    async fn start() -> Self {
        let app = spawn_app(|config| {
            config.admin_user = Some(ADMIN_USER.to_owned());
            config.admin_password = Some(match ADMIN_PASSWORD.parse::<Secret>() {
                Ok(secret) => secret,
                Err(never) => match never {},
            });
        })
        .await;
        Self {
            app,
            next: AtomicUsize::new(1),
        }
    }

    /// A name no other fixture has.
    fn unique(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// A fresh user created with `createUser`.
    async fn user(&self) -> String {
        let username = self.unique("user");
        let response = send(
            self.app
                .anonymous
                .post(self.app.api("/user"))
                .json(&user_body(&username)),
        )
        .await;
        ok_json(response).await;
        username
    }

    /// A fresh customer with a session of its own.
    async fn customer(&self) -> Customer {
        let username = self.user().await;
        let (token, _) = self.app.create_token(&username, PASSWORD).await;
        Customer { username, token }
    }

    /// A fresh available pet.
    async fn pet(&self) -> i64 {
        self.app.add_available_pet(&self.unique("pet")).await
    }

    /// A fresh order placed by `customer`; returns its id and its pet.
    async fn order_of(&self, customer: &Customer) -> (i64, i64) {
        let pet = self.pet().await;
        let request = bearer(
            self.app.anonymous.post(self.app.api("/store/order")),
            &customer.token,
        )
        .json(&json!({ "petId": pet }));
        let order = ok_json(send(request).await).await;
        (id_of(&order), pet)
    }

    /// The credentials of a fresh caller of this kind.
    async fn acting(&self, caller: Caller) -> Acting {
        match caller {
            Caller::Anonymous | Caller::ApiKey => Acting {
                caller,
                customer: None,
                token: None,
            },
            Caller::Customer => {
                let customer = self.customer().await;
                Acting {
                    caller,
                    token: Some(customer.token.clone()),
                    customer: Some(customer),
                }
            }
            Caller::Admin => {
                let (token, _) = self.app.create_token(ADMIN_USER, ADMIN_PASSWORD).await;
                Acting {
                    caller,
                    customer: None,
                    token: Some(token),
                }
            }
        }
    }

    /// A request to an API path as `acting`.
    fn request(&self, acting: &Acting, method: Method, path: &str) -> RequestBuilder {
        let url = self.app.api(path);
        match (acting.caller, &acting.token) {
            (Caller::ApiKey, _) => self.app.client.request(method, url),
            (_, Some(token)) => bearer(self.app.anonymous.request(method, url), token),
            (_, None) => self.app.anonymous.request(method, url),
        }
    }

    /// The order an ownership-dependent request acts on.
    async fn order_for(&self, acting: &Acting, target: Target) -> (i64, i64) {
        match (target, &acting.customer) {
            (Target::Own, Some(customer)) => self.order_of(customer).await,
            (Target::Own, None) => panic!("only a customer has orders of their own here"),
            (Target::Other, _) => self.order_of(&self.customer().await).await,
        }
    }

    /// The user an ownership-dependent request acts on.
    async fn user_for(&self, acting: &Acting, target: Target) -> String {
        match (target, &acting.customer) {
            (Target::Own, Some(customer)) => customer.username.clone(),
            (Target::Own, None) => panic!("only a customer is a user of their own here"),
            (Target::Other, _) => self.user().await,
        }
    }

    /// `operation`, performed as `acting` on fresh fixtures, with an otherwise valid request.
    async fn perform(&self, operation: &str, acting: &Acting, target: Target) -> reqwest::Response {
        let request = match operation {
            "updatePet" => {
                let id = self.pet().await;
                self.request(acting, Method::PUT, "/pet")
                    .json(&json!({ "id": id, "name": self.unique("renamed"), "photoUrls": [] }))
            }
            "addPet" => self
                .request(acting, Method::POST, "/pet")
                .json(&new_pet(&self.unique("added"))),
            "findPetsByStatus" => self
                .request(acting, Method::GET, "/pet/findByStatus")
                .query(&[("status", "available")]),
            "findPetsByTags" => self
                .request(acting, Method::GET, "/pet/findByTags")
                .query(&[("tags", "matrix")]),
            "getPetById" => {
                let id = self.pet().await;
                self.request(acting, Method::GET, &format!("/pet/{id}"))
            }
            "updatePetWithForm" => {
                let id = self.pet().await;
                self.request(acting, Method::POST, &format!("/pet/{id}"))
                    .query(&[("name", "renamed")])
            }
            "deletePet" => {
                let id = self.pet().await;
                self.request(acting, Method::DELETE, &format!("/pet/{id}"))
            }
            "uploadFile" => {
                let id = self.pet().await;
                self.request(acting, Method::POST, &format!("/pet/{id}/uploadImage"))
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(PNG)
            }
            "getPetImage" => {
                let id = self.pet().await;
                let uploaded = ok_json(self.app.upload(id, PNG).await).await;
                let Some(url) = uploaded["message"].as_str() else {
                    panic!("no image URL in {uploaded}");
                };
                let Some(path) = url.strip_prefix(API_BASE) else {
                    panic!("the image URL {url} is not under {API_BASE}");
                };
                self.request(acting, Method::GET, path)
            }
            "getInventory" => self.request(acting, Method::GET, "/store/inventory"),
            "placeOrder" => {
                let pet = self.pet().await;
                self.request(acting, Method::POST, "/store/order")
                    .json(&json!({ "petId": pet }))
            }
            "getOrderById" => {
                let (id, _) = self.order_for(acting, target).await;
                self.request(acting, Method::GET, &format!("/store/order/{id}"))
            }
            "updateOrder" => {
                let (id, pet) = self.order_for(acting, target).await;
                self.request(acting, Method::PUT, &format!("/store/order/{id}"))
                    .json(&json!({ "id": id, "petId": pet, "status": "approved" }))
            }
            "deleteOrder" => {
                let (id, _) = self.order_for(acting, target).await;
                self.request(acting, Method::DELETE, &format!("/store/order/{id}"))
            }
            "createUser" => self
                .request(acting, Method::POST, "/user")
                .json(&user_body(&self.unique("new"))),
            "createUsersWithListInput" => self
                .request(acting, Method::POST, "/user/createWithList")
                .json(&json!([user_body(&self.unique("listed"))])),
            "loginUser" => {
                let username = self.user().await;
                self.request(acting, Method::GET, "/user/login")
                    .query(&[("username", username.as_str()), ("password", PASSWORD)])
            }
            "logoutUser" => self.request(acting, Method::GET, "/user/logout"),
            "getUserByName" => {
                let username = self.user_for(acting, target).await;
                self.request(acting, Method::GET, &format!("/user/{username}"))
            }
            "updateUser" => {
                let username = self.user_for(acting, target).await;
                self.request(acting, Method::PUT, &format!("/user/{username}"))
                    .json(&json!({ "username": username, "firstName": "Changed" }))
            }
            "deleteUser" => {
                let username = self.user_for(acting, target).await;
                self.request(acting, Method::DELETE, &format!("/user/{username}"))
            }
            "createToken" => {
                let username = self.user().await;
                self.request(acting, Method::POST, "/auth/token")
                    .json(&json!({ "username": username, "password": PASSWORD }))
            }
            "refreshToken" => {
                let username = self.user().await;
                let (_, refresh) = self.app.create_token(&username, PASSWORD).await;
                self.request(acting, Method::POST, "/auth/refresh")
                    .json(&json!({ "refreshToken": refresh }))
            }
            other => panic!(
                "the matrix lists `{other}`, which this test does not know how to call: \
                 add it to Matrix::perform"
            ),
        };
        send(request).await
    }

    /// Performs one request of a cell; a mismatch is described in the returned error.
    async fn check(
        &self,
        operation: &str,
        caller: Caller,
        target: Target,
        expect: Expect,
    ) -> Result<(), String> {
        let acting = self.acting(caller).await;
        let response = self.perform(operation, &acting, target).await;
        let status = response.status().as_u16();
        let challenge = header_text(&response, header::WWW_AUTHENTICATE.as_str());
        let content_type = content_type(&response);
        let text = response.text().await.unwrap_or_default();
        let owned = ORDER_OPERATIONS.contains(&operation) || USER_OPERATIONS.contains(&operation);
        let cell = if owned {
            format!("{operation} as {caller:?} on {target:?}")
        } else {
            format!("{operation} as {caller:?}")
        };
        match expect {
            Expect::Allowed if (200..300).contains(&status) => Ok(()),
            Expect::Refused(expected) if status == expected => {
                if !content_type.starts_with("application/json") {
                    return Err(format!(
                        "{cell}: the {status} is {content_type:?}, not JSON"
                    ));
                }
                let body: Value = serde_json::from_str(&text)
                    .map_err(|error| format!("{cell}: the {status} body is not JSON: {error}"))?;
                assert_error_body(
                    &body,
                    expected,
                    if expected == 401 {
                        "UNAUTHORIZED"
                    } else {
                        "FORBIDDEN"
                    },
                );
                if expected == 401
                    && !challenge
                        .as_deref()
                        .is_some_and(|challenge| challenge.starts_with("Bearer realm="))
                {
                    return Err(format!(
                        "{cell}: 401 without a Bearer challenge: {challenge:?}"
                    ));
                }
                Ok(())
            }
            _ => Err(format!("{cell}: expected {expect}, got {status}: {text}")),
        }
    }
}

/// A valid user body with [`PASSWORD`].
fn user_body(username: &str) -> Value {
    json!({
        "username": username,
        "firstName": "Test",
        "lastName": "User",
        "email": format!("{username}@example.com"),
        "password": PASSWORD,
        "phone": "555-0100",
        "userStatus": 1
    })
}

/// The requests of one row and caller: ownership operations done by a customer are checked on
/// the customer's own resource and on another's (both, even where the cell does not
/// distinguish, so a uniform 403 holds for their own resource too); everything else on a
/// resource of another customer.
fn requests_of(operation: &str, caller: Caller, cell: Cell) -> Vec<(Target, Expect)> {
    let owned = ORDER_OPERATIONS.contains(&operation) || USER_OPERATIONS.contains(&operation);
    if cell.split {
        assert!(
            owned && caller == Caller::Customer,
            "the matrix says own/other for {operation} as {caller:?}; this test only knows \
             what a customer owns"
        );
    }
    if owned && caller == Caller::Customer {
        vec![(Target::Own, cell.own), (Target::Other, cell.other)]
    } else {
        vec![(Target::Other, cell.other)]
    }
}

/// How many cells are checked at once: enough to overlap the password hashing of fixtures on
/// two cores, few enough to keep Argon2's memory in bounds.
const CONCURRENT_CELLS: usize = 4;

#[tokio::test]
async fn every_cell_of_the_readme_matrix_holds_over_http() {
    let rows = matrix(README);
    let matrix = Arc::new(Matrix::start().await);
    let permits = Arc::new(Semaphore::new(CONCURRENT_CELLS));
    let mut cells = JoinSet::new();
    for row in &rows {
        for (caller, cell) in Caller::ALL.into_iter().zip(row.cells) {
            for (target, expect) in requests_of(&row.operation, caller, cell) {
                let (matrix, permits) = (Arc::clone(&matrix), Arc::clone(&permits));
                let operation = row.operation.clone();
                cells.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    matrix.check(&operation, caller, target, expect).await
                });
            }
        }
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    while let Some(outcome) = cells.join_next().await {
        checked += 1;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {checked} matrix requests disagree with README.md:\n{}",
        failures.len(),
        failures.join("\n")
    );
    match Arc::try_unwrap(matrix) {
        Ok(matrix) => matrix.app.shutdown().await,
        Err(_) => panic!("a matrix cell outlived the walk"),
    }
}

// ---- service keys ----

const CUSTOMER_KEY: &str = "customer-service-key-0123456789abcdefghijklmnop";

/// A server with a second, customer-role service key named `name`.
async fn with_customer_key(name: &str) -> TestApp {
    let name = name.to_owned();
    spawn_app(move |config| {
        config
            .api_keys
            .push(api_key_spec(&name, "customer", CUSTOMER_KEY))
    })
    .await
}

fn with_key(request: RequestBuilder, key: &str) -> RequestBuilder {
    request.header("api_key", key)
}

#[tokio::test]
async fn a_customer_role_service_key_may_place_orders_but_not_add_pets() {
    let app = with_customer_key("shop-front").await;
    let refused =
        send(with_key(app.anonymous.post(app.api("/pet")), CUSTOMER_KEY).json(&new_pet("nope")))
            .await;
    expect_error(refused, 403, "FORBIDDEN").await;

    let pet = app.add_available_pet("wanted").await;
    let placed = send(
        with_key(app.anonymous.post(app.api("/store/order")), CUSTOMER_KEY)
            .json(&json!({ "petId": pet })),
    )
    .await;
    let order = ok_json(placed).await;
    let own = send(with_key(
        app.anonymous
            .get(app.api(&format!("/store/order/{}", id_of(&order)))),
        CUSTOMER_KEY,
    ))
    .await;
    ok_json(own).await;

    // An order of someone else stays out of reach.
    let other_pet = app.add_available_pet("theirs").await;
    let theirs = app.place_order(json!({ "petId": other_pet })).await;
    let other = send(with_key(
        app.anonymous
            .get(app.api(&format!("/store/order/{}", id_of(&theirs)))),
        CUSTOMER_KEY,
    ))
    .await;
    expect_error(other, 403, "FORBIDDEN").await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_service_key_is_never_the_user_of_the_same_name() {
    let app = with_customer_key("walker").await;
    app.create_user("walker", PASSWORD).await;
    for (method, body) in [
        (Method::GET, None),
        (
            Method::PUT,
            Some(json!({ "username": "walker", "firstName": "Taken" })),
        ),
        (Method::DELETE, None),
    ] {
        let mut request = with_key(
            app.anonymous
                .request(method.clone(), app.api("/user/walker")),
            CUSTOMER_KEY,
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        expect_error(send(request).await, 403, "FORBIDDEN").await;
    }
    ok_json(app.get("/user/walker").await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_wrong_api_key_is_unauthorized() {
    let app = spawn_app(|_| {}).await;
    for key in ["wrong", &ADMIN_API_KEY[..ADMIN_API_KEY.len() - 1], ""] {
        let response = send(with_key(
            app.anonymous.get(app.api("/store/inventory")),
            key,
        ))
        .await;
        expect_unauthorized(response).await;
    }
    // The control: the right key opens the same door.
    ok_json(
        send(with_key(
            app.anonymous.get(app.api("/store/inventory")),
            ADMIN_API_KEY,
        ))
        .await,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn missing_credentials_are_unauthorized_without_an_error_code() {
    let app = spawn_app(|_| {}).await;
    let response = send(app.anonymous.get(app.api("/store/inventory"))).await;
    let challenge = expect_unauthorized(response).await;
    // RFC 6750 §3.1: a request without credentials gets no error code.
    assert!(!challenge.contains("error="), "{challenge}");
    app.shutdown().await;
}

// ---- ownership across renames ----

#[tokio::test]
async fn a_renamed_users_tokens_do_not_act_for_a_new_user_of_the_old_name() {
    let app = spawn_app(|_| {}).await;
    app.create_user("renamer", PASSWORD).await;
    let (token, refresh) = app.create_token("renamer", PASSWORD).await;
    let rename = bearer(app.anonymous.put(app.api("/user/renamer")), &token)
        .json(&json!({ "username": "renamed", "firstName": "New" }));
    ok_text(send(rename).await).await;

    // Someone else signs up under the freed name.
    app.create_user("renamer", "another-password").await;
    let mut tokens = vec![token];
    let refreshed = app.refresh(&refresh).await;
    if refreshed.status() == 200 {
        let body = ok_json(refreshed).await;
        tokens.extend(body["accessToken"].as_str().map(str::to_owned));
    } else {
        expect_unauthorized(refreshed).await;
    }
    for token in &tokens {
        let response = send(bearer(app.anonymous.get(app.api("/user/renamer")), token)).await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status == 401 || status == 403,
            "a session of the old `renamer` reads the new `renamer`: {status} {body}"
        );
    }
    app.shutdown().await;
}
