//! Access and refresh tokens over HTTP: the published signing key, forged and broken bearer
//! tokens, refresh-token rotation and reuse, and the ways sessions end (logout, password change,
//! user deletion).
//!
//! The server signs with a key the test knows (written to a temporary file and configured as
//! `jwt_private_key`), so the test can mint tokens exactly like the server's and then break one
//! thing at a time. Every forgery is paired with its correctly signed twin, which must be
//! accepted: a rejection that would also hit a good token proves nothing.

use std::sync::LazyLock;

use aws_lc_rs::{
    encoding::AsDer,
    signature::{KeyPair, RsaKeyPair},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use petstore_testkit::app::*;
use petstore_ws::{auth::tokens::generate_ephemeral_key_pem, config::Secret};
use reqwest::{Response, header};
use serde_json::{Value, json};

/// The issuer and audience of the test servers (the defaults).
const ISSUER: &str = "petstore-ws";
const AUDIENCE: &str = "petstore-api";

/// The bootstrapped administrator, the subject of the forged tokens.
const ADMIN_USER: &str = "token-admin";
const ADMIN_PASSWORD: &str = "token-admin-password";

/// The password of every customer the tests create.
const PASSWORD: &str = "correct-horse-battery";

/// The server's signing key (RSA-2048, PKCS#8 PEM), shared by the tests of this file.
static SERVER_KEY: LazyLock<String> = LazyLock::new(|| match generate_ephemeral_key_pem() {
    Ok(pem) => pem,
    Err(error) => panic!("cannot generate the signing key: {error}"),
});

/// A key the server does not know.
static FOREIGN_KEY: LazyLock<String> = LazyLock::new(|| match generate_ephemeral_key_pem() {
    Ok(pem) => pem,
    Err(error) => panic!("cannot generate the foreign key: {error}"),
});

/// A server signing with [`SERVER_KEY`], with the administrator [`ADMIN_USER`], and whatever
/// `tweak` changes on top.
///
/// The key goes to a file of its own, read by the server at start-up and removed right after.
async fn spawn_signing_app(tweak: impl FnOnce(&mut petstore_ws::config::Config)) -> TestApp {
    let key_file = std::env::temp_dir().join(format!(
        "petstore-ws-api-tokens-{}.pem",
        uuid::Uuid::new_v4()
    ));
    if let Err(error) = std::fs::write(&key_file, SERVER_KEY.as_bytes()) {
        panic!("cannot write {}: {error}", key_file.display());
    }
    let configured = key_file.clone();
    let app = spawn_app(move |config| {
        config.jwt_private_key = Some(configured);
        config.admin_user = Some(ADMIN_USER.to_owned());
        config.admin_password = Some(match ADMIN_PASSWORD.parse::<Secret>() {
            Ok(secret) => secret,
            Err(never) => match never {},
        });
        tweak(config);
    })
    .await;
    if let Err(error) = std::fs::remove_file(&key_file) {
        panic!("cannot remove {}: {error}", key_file.display());
    }
    app
}

fn encoding_key(pem: &str) -> EncodingKey {
    match EncodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(key) => key,
        Err(error) => panic!("not an RSA key: {error}"),
    }
}

/// The public half of a private key, as SPKI DER and as PKCS#1 DER.
fn public_key_der(pem: &str) -> (Vec<u8>, Vec<u8>) {
    let pair = match RsaKeyPair::from_der(encoding_key(pem).as_bytes()) {
        Ok(pair) => pair,
        Err(error) => panic!("not an RSA key pair: {error}"),
    };
    let spki = match pair.public_key().as_der() {
        Ok(der) => der.as_ref().to_vec(),
        Err(error) => panic!("cannot encode the public key: {error}"),
    };
    (spki, pair.public_key().as_ref().to_vec())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The JSON of one base64url segment of a JWT.
fn segment(token: &str, index: usize) -> Value {
    let Some(part) = token.split('.').nth(index) else {
        panic!("{token:?} has no segment {index}");
    };
    let bytes = match URL_SAFE_NO_PAD.decode(part) {
        Ok(bytes) => bytes,
        Err(error) => panic!("segment {index} of {token:?} is not base64url: {error}"),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(error) => panic!("segment {index} of {token:?} is not JSON: {error}"),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as the server issues them to the administrator: good for ten minutes.
fn admin_claims() -> Value {
    let now = now();
    json!({
        "sub": ADMIN_USER,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "roles": ["admin"],
        "perms": [],
    })
}

/// The `kid` the server signs with, from its JWK set.
async fn server_kid(app: &TestApp) -> String {
    let jwks = ok_jwks(send(app.anonymous.get(app.url("/.well-known/jwks.json"))).await).await;
    match jwks["keys"][0]["kid"].as_str() {
        Some(kid) => kid.to_owned(),
        None => panic!("no kid in {jwks}"),
    }
}

async fn ok_jwks(response: Response) -> Value {
    assert_eq!(response.status(), 200, "status of the JWK set");
    let content_type = content_type(&response);
    assert!(
        content_type.starts_with("application/jwk-set+json"),
        "content type of the JWK set: {content_type:?}"
    );
    body_json(response).await
}

/// `claims` signed with RS256 by `pem` under `kid`.
fn sign(pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    match jsonwebtoken::encode(&header, claims, &encoding_key(pem)) {
        Ok(token) => token,
        Err(error) => panic!("cannot sign: {error}"),
    }
}

/// `GET /store/inventory` (admins only) with this bearer token and nothing else.
async fn inventory_with(app: &TestApp, token: &str) -> Response {
    send(bearer(
        app.anonymous.get(app.api("/store/inventory")),
        token,
    ))
    .await
}

/// Asserts that `good` opens the inventory and each of `forged` is refused as an invalid token.
async fn assert_only_the_genuine_token_is_accepted(app: &TestApp, good: &str, forged: &[String]) {
    ok_json(inventory_with(app, good).await).await;
    for token in forged {
        let response = inventory_with(app, token).await;
        let status = response.status();
        if status != 401 {
            panic!(
                "forged token {token:?} got {status}: {}",
                response.text().await.unwrap_or_default()
            );
        }
        expect_invalid_token(response).await;
    }
}

// ---- the signing key ----

#[tokio::test]
async fn jwks_publishes_the_rs256_key_that_issued_tokens_name() {
    let app = spawn_signing_app(|_| {}).await;
    let jwks = ok_jwks(send(app.anonymous.get(app.url("/.well-known/jwks.json"))).await).await;
    let Some(keys) = jwks["keys"].as_array() else {
        panic!("no keys in {jwks}");
    };
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA", "{key}");
    assert_eq!(key["alg"], "RS256", "{key}");
    assert_eq!(key["use"], "sig", "{key}");
    assert!(
        key.get("d").is_none(),
        "private parameters published: {key}"
    );
    let Some(kid) = key["kid"].as_str().filter(|kid| !kid.is_empty()) else {
        panic!("no kid in {key}");
    };

    // The published modulus is the configured key's.
    let (_, pkcs1) = public_key_der(&SERVER_KEY);
    let Some(n) = key["n"].as_str() else {
        panic!("no modulus in {key}");
    };
    let modulus = URL_SAFE_NO_PAD.decode(n).unwrap_or_default();
    assert!(
        !modulus.is_empty() && pkcs1.windows(modulus.len()).any(|part| part == modulus),
        "the JWK is not the public half of the configured key"
    );

    let (access, _) = app.create_token(ADMIN_USER, ADMIN_PASSWORD).await;
    let header = segment(&access, 0);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["kid"], kid, "{header}");
    let claims = segment(&access, 1);
    for claim in [
        "sub", "exp", "iat", "nbf", "jti", "iss", "aud", "roles", "perms", "sid",
    ] {
        assert!(claims.get(claim).is_some(), "no {claim} in {claims}");
    }
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    app.shutdown().await;
}

#[tokio::test]
async fn access_tokens_live_as_long_as_configured() {
    let app = spawn_signing_app(|config| config.access_token_ttl_secs = 60).await;
    let answer = ok_json(app.request_token(ADMIN_USER, ADMIN_PASSWORD).await).await;
    let Some(access) = answer["accessToken"].as_str() else {
        panic!("no accessToken in {answer}");
    };
    let claims = segment(access, 1);
    assert_eq!(
        claims["exp"]
            .as_i64()
            .zip(claims["iat"].as_i64())
            .map(|(exp, iat)| exp - iat),
        Some(60),
        "{claims}"
    );
    // The lifetime as signed, not a countdown that depends on how long the answer took.
    assert_eq!(
        answer["expiresIn"].as_i64(),
        Some(60),
        "expiresIn of {answer}"
    );
    app.shutdown().await;
}

// ---- forged and broken tokens ----

#[tokio::test]
async fn an_unsigned_alg_none_token_is_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let claims = admin_claims();
    let good = sign(&SERVER_KEY, Some(&kid), &claims);
    let forged: Vec<String> = ["none", "None", "NONE"]
        .iter()
        .flat_map(|alg| {
            let header = b64_json(&json!({ "alg": alg, "typ": "JWT", "kid": kid }));
            let payload = b64_json(&claims);
            let signature = good.rsplit('.').next().unwrap_or_default();
            [
                format!("{header}.{payload}."),
                format!("{header}.{payload}.{signature}"),
            ]
        })
        .collect();
    assert_only_the_genuine_token_is_accepted(&app, &good, &forged).await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_our_public_key_is_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let claims = admin_claims();
    let (spki, pkcs1) = public_key_der(&SERVER_KEY);
    let jwks = ok_jwks(send(app.anonymous.get(app.url("/.well-known/jwks.json"))).await).await;
    let n = jwks["keys"][0]["n"].as_str().unwrap_or_default().to_owned();
    let secrets: Vec<Vec<u8>> = vec![
        pem("PUBLIC KEY", &spki).into_bytes(),
        pem("RSA PUBLIC KEY", &pkcs1).into_bytes(),
        spki,
        pkcs1,
        n.into_bytes(),
    ];
    let forged: Vec<String> = secrets
        .iter()
        .flat_map(|secret| {
            [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512].map(|alg| {
                let mut header = Header::new(alg);
                header.kid = Some(kid.clone());
                match jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)) {
                    Ok(token) => token,
                    Err(error) => panic!("cannot sign with HMAC: {error}"),
                }
            })
        })
        .collect();
    let good = sign(&SERVER_KEY, Some(&kid), &claims);
    assert_only_the_genuine_token_is_accepted(&app, &good, &forged).await;
    app.shutdown().await;
}

/// Signs the administrator's claims twice with our key and `kid`: as they are, and changed by
/// `forge`; the first must be accepted and the second refused.
async fn assert_claim_is_checked(forge: impl FnOnce(&mut Value)) {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let claims = admin_claims();
    let mut forged = claims.clone();
    forge(&mut forged);
    assert_ne!(forged, claims, "the forgery changed nothing");
    assert_only_the_genuine_token_is_accepted(
        &app,
        &sign(&SERVER_KEY, Some(&kid), &claims),
        &[sign(&SERVER_KEY, Some(&kid), &forged)],
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_rejected() {
    assert_claim_is_checked(|claims| claims["iss"] = json!("https://evil.example")).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_rejected() {
    assert_claim_is_checked(|claims| claims["aud"] = json!("another-api")).await;
}

#[tokio::test]
async fn a_token_expired_beyond_the_leeway_is_rejected() {
    assert_claim_is_checked(|claims| {
        let now = now();
        claims["iat"] = json!(now - 3600);
        claims["nbf"] = json!(now - 3600);
        claims["exp"] = json!(now - 600);
    })
    .await;
}

#[tokio::test]
async fn a_token_not_valid_until_the_future_is_rejected() {
    assert_claim_is_checked(|claims| {
        let now = now();
        claims["nbf"] = json!(now + 600);
        claims["exp"] = json!(now + 1200);
    })
    .await;
}

#[tokio::test]
async fn a_token_without_an_expiry_is_rejected() {
    assert_claim_is_checked(|claims| {
        if let Some(object) = claims.as_object_mut() {
            object.remove("exp");
        }
    })
    .await;
}

#[tokio::test]
async fn a_token_with_an_unknown_or_missing_kid_is_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let claims = admin_claims();
    let forged = vec![
        sign(&SERVER_KEY, Some("not-our-key"), &claims),
        sign(&SERVER_KEY, Some(""), &claims),
        sign(&SERVER_KEY, None, &claims),
    ];
    assert_only_the_genuine_token_is_accepted(
        &app,
        &sign(&SERVER_KEY, Some(&kid), &claims),
        &forged,
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_our_kid_is_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let claims = admin_claims();
    assert_only_the_genuine_token_is_accepted(
        &app,
        &sign(&SERVER_KEY, Some(&kid), &claims),
        &[sign(&FOREIGN_KEY, Some(&kid), &claims)],
    )
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_customer_token_whose_roles_were_tampered_with_is_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    app.create_user("tamperer", PASSWORD).await;
    let (access, _) = app.create_token("tamperer", PASSWORD).await;
    // Genuine, but a customer's: not enough for the inventory.
    expect_error(inventory_with(&app, &access).await, 403, "FORBIDDEN").await;

    let parts: Vec<&str> = access.split('.').collect();
    let mut claims = segment(&access, 1);
    claims["roles"] = json!(["admin"]);
    claims["perms"] = json!(["inventory:read"]);
    let tampered = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    let response = inventory_with(&app, &tampered).await;
    expect_invalid_token(response).await;

    // A flipped signature bit on the genuine token is caught too.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap_or_default();
    if let Some(byte) = signature.first_mut() {
        *byte ^= 1;
    }
    let flipped = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    let me = |token: &str| send(bearer(app.anonymous.get(app.api("/user/tamperer")), token));
    ok_json(me(&access).await).await;
    expect_invalid_token(me(&flipped).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_bearer_tokens_are_rejected() {
    let app = spawn_signing_app(|_| {}).await;
    let kid = server_kid(&app).await;
    let good = sign(&SERVER_KEY, Some(&kid), &admin_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    let forged = vec![
        "garbage".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        "...".to_owned(),
        format!("{good}.{}", parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        format!("{not_json}.{not_json}.{}", parts[2]),
        format!("{}.{not_json}.{}", parts[0], parts[2]),
        format!("{}.{}.!!!", parts[0], parts[1]),
        format!("{good}{}", "A".repeat(9000)),
    ];
    assert_only_the_genuine_token_is_accepted(&app, &good, &forged).await;
    app.shutdown().await;
}

// ---- refresh tokens ----

/// A server with a customer `username`; returns it with a session of that customer.
async fn with_customer(username: &str) -> (TestApp, String, String) {
    let app = spawn_signing_app(|_| {}).await;
    app.create_user(username, PASSWORD).await;
    let (access, refresh) = app.create_token(username, PASSWORD).await;
    (app, access, refresh)
}

/// `GET /user/{username}` with this bearer token: what a customer may do with any session.
async fn read_self(app: &TestApp, username: &str, token: &str) -> Response {
    send(bearer(
        app.anonymous.get(app.api(&format!("/user/{username}"))),
        token,
    ))
    .await
}

/// A successful refresh: the new access and refresh tokens.
async fn refreshed(app: &TestApp, refresh_token: &str) -> (String, String) {
    let body = ok_json(app.refresh(refresh_token).await).await;
    let text = |member: &str| match body[member].as_str() {
        Some(text) => text.to_owned(),
        None => panic!("no {member} in {body}"),
    };
    assert_eq!(body["tokenType"], "Bearer", "{body}");
    (text("accessToken"), text("refreshToken"))
}

#[tokio::test]
async fn refresh_hands_out_a_new_pair_of_the_same_session_and_the_old_access_token_keeps_working() {
    let (app, access, refresh) = with_customer("refresher").await;
    let (next_access, next_refresh) = refreshed(&app, &refresh).await;
    assert_ne!(next_access, access);
    assert_ne!(next_refresh, refresh);
    assert_eq!(segment(&next_access, 1)["sid"], segment(&access, 1)["sid"]);
    assert_eq!(segment(&next_access, 1)["sub"], "refresher");

    ok_json(read_self(&app, "refresher", &access).await).await;
    ok_json(read_self(&app, "refresher", &next_access).await).await;
    // The next refresh token is good for another round.
    refreshed(&app, &next_refresh).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_revokes_its_whole_session() {
    let (app, access, refresh) = with_customer("replayer").await;
    let (next_access, next_refresh) = refreshed(&app, &refresh).await;
    // Another session of the same user is not touched.
    let (other_access, other_refresh) = app.create_token("replayer", PASSWORD).await;

    expect_unauthorized(app.refresh(&refresh).await).await;

    expect_unauthorized(app.refresh(&next_refresh).await).await;
    for token in [&access, &next_access] {
        expect_invalid_token(read_self(&app, "replayer", token).await).await;
    }
    ok_json(read_self(&app, "replayer", &other_access).await).await;
    refreshed(&app, &other_refresh).await;
    app.shutdown().await;
}

#[tokio::test]
async fn refresh_tokens_that_were_never_issued_are_unauthorized() {
    let (app, _, refresh) = with_customer("guesser").await;
    let mut altered = refresh.clone();
    let last = if altered.ends_with('A') { "B" } else { "A" };
    altered.replace_range(altered.len() - 1.., last);
    for token in [
        altered.as_str(),
        "garbage",
        &"A".repeat(43),
        &"A".repeat(512),
    ] {
        expect_unauthorized(app.refresh(token).await).await;
    }
    // None of that harmed the real one.
    refreshed(&app, &refresh).await;
    app.shutdown().await;
}

// ---- ending sessions ----

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_refresh_token_of_its_session() {
    let (app, access, refresh) = with_customer("leaver").await;
    let (other_access, other_refresh) = app.create_token("leaver", PASSWORD).await;
    ok_json(read_self(&app, "leaver", &access).await).await;

    ok_text(send(bearer(app.anonymous.get(app.api("/user/logout")), &access)).await).await;

    expect_invalid_token(read_self(&app, "leaver", &access).await).await;
    expect_unauthorized(app.refresh(&refresh).await).await;
    // Only that session ended.
    ok_json(read_self(&app, "leaver", &other_access).await).await;
    refreshed(&app, &other_refresh).await;
    app.shutdown().await;
}

#[tokio::test]
async fn logout_revokes_the_refreshed_access_tokens_of_the_session_too() {
    let (app, access, refresh) = with_customer("rotator").await;
    let (next_access, next_refresh) = refreshed(&app, &refresh).await;

    ok_text(
        send(bearer(
            app.anonymous.get(app.api("/user/logout")),
            &next_access,
        ))
        .await,
    )
    .await;

    for token in [&access, &next_access] {
        expect_invalid_token(read_self(&app, "rotator", token).await).await;
    }
    expect_unauthorized(app.refresh(&next_refresh).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_login_user_token_works_on_secured_operations_until_logout() {
    let app = spawn_signing_app(|_| {}).await;
    app.create_user("classic", PASSWORD).await;
    let token = ok_json(app.login("classic", PASSWORD).await).await;
    let Some(token) = token.as_str() else {
        panic!("the token is not a JSON string: {token}");
    };
    ok_json(read_self(&app, "classic", token).await).await;
    let pet = app.add_available_pet("classic-pet").await;
    let order = send(
        bearer(app.anonymous.post(app.api("/store/order")), token).json(&json!({ "petId": pet })),
    )
    .await;
    ok_json(order).await;

    ok_text(send(bearer(app.anonymous.get(app.api("/user/logout")), token)).await).await;

    expect_invalid_token(read_self(&app, "classic", token).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn changing_a_password_ends_the_users_other_sessions_but_not_the_callers() {
    let (app, caller_access, caller_refresh) = with_customer("changer").await;
    let (other_access, other_refresh) = app.create_token("changer", PASSWORD).await;
    let classic = ok_json(app.login("changer", PASSWORD).await).await;
    let Some(classic) = classic.as_str() else {
        panic!("the token is not a JSON string: {classic}");
    };

    let change = bearer(app.anonymous.put(app.api("/user/changer")), &caller_access)
        .json(&json!({ "username": "changer", "password": "a-brand-new-password" }));
    ok_text(send(change).await).await;

    for token in [other_access.as_str(), classic] {
        expect_invalid_token(read_self(&app, "changer", token).await).await;
    }
    expect_unauthorized(app.refresh(&other_refresh).await).await;

    ok_json(read_self(&app, "changer", &caller_access).await).await;
    let (next_access, _) = refreshed(&app, &caller_refresh).await;
    ok_json(read_self(&app, "changer", &next_access).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn an_admin_changing_a_password_ends_every_session_of_that_user() {
    let (app, access, refresh) = with_customer("managed").await;
    let change = app
        .client
        .put(app.api("/user/managed"))
        .json(&json!({ "username": "managed", "password": "set-by-the-admin" }));
    ok_text(send(change).await).await;

    expect_invalid_token(read_self(&app, "managed", &access).await).await;
    expect_unauthorized(app.refresh(&refresh).await).await;
    // The new password starts new sessions.
    let (fresh, _) = app.create_token("managed", "set-by-the-admin").await;
    ok_json(read_self(&app, "managed", &fresh).await).await;
    app.shutdown().await;
}

#[tokio::test]
async fn deleting_a_user_revokes_their_tokens() {
    let (app, access, refresh) = with_customer("deleted").await;
    let classic = ok_json(app.login("deleted", PASSWORD).await).await;
    let Some(classic) = classic.as_str() else {
        panic!("the token is not a JSON string: {classic}");
    };
    ok_text(app.delete("/user/deleted").await).await;

    // Even once the name is taken again.
    app.create_user("deleted", PASSWORD).await;
    for token in [access.as_str(), classic] {
        expect_invalid_token(read_self(&app, "deleted", token).await).await;
    }
    expect_unauthorized(app.refresh(&refresh).await).await;
    app.shutdown().await;
}

// ---- passwords ----

#[tokio::test]
async fn create_token_answers_a_wrong_password_and_an_unknown_user_identically() {
    let app = spawn_signing_app(|_| {}).await;
    app.create_user("existing", PASSWORD).await;

    let wrong_password = app.request_token("existing", "not-the-password").await;
    let unknown_user = app.request_token("nobody-here", PASSWORD).await;
    let challenges = [
        header_text(&wrong_password, header::WWW_AUTHENTICATE.as_str()),
        header_text(&unknown_user, header::WWW_AUTHENTICATE.as_str()),
    ];
    let wrong_password = expect_error(wrong_password, 401, "UNAUTHORIZED").await;
    let unknown_user = expect_error(unknown_user, 401, "UNAUTHORIZED").await;
    assert_eq!(wrong_password, unknown_user);
    assert_eq!(challenges[0], challenges[1]);
    assert!(
        challenges[0]
            .as_deref()
            .is_some_and(|challenge| challenge.starts_with("Bearer realm=")),
        "{challenges:?}"
    );
    app.shutdown().await;
}
