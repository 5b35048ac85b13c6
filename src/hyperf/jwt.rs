//! Seed 000's `WebSocketAuthMiddleware`: `Authorization: Bearer <JWT>` checked at the
//! handshake (HS256, with `jsonwebtoken`), a route whitelist, the claims stored in the
//! connection context under `jwt`; every failure is a `401` with a JSON body
//! `{"code":…,"msg":"…"}` and no upgrade.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

use super::exception::Error;
use super::http::json;
use super::middleware::{Middleware, Next};
use super::request::HttpCtx;
use crate::runtime::Response;

/// Error codes of the JSON body (seed 000's `ErrorCode`).
pub const JWT_EMPTY_ERR: u32 = 40101;
/// The token does not decode or verify.
pub const DO_JWT_FAIL: u32 = 40102;
/// The token has expired.
pub const JWT_EXPIRED: u32 = 40103;

/// The middleware. The decoded claims (`serde_json::Value`) are in the context under `jwt`.
pub struct JwtAuth {
    key: DecodingKey,
    validation: Validation,
    whitelist: Vec<String>,
}

impl JwtAuth {
    /// HS256 tokens signed with `secret`; `exp` is required and checked without leeway.
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        JwtAuth {
            key: DecodingKey::from_secret(secret),
            validation,
            whitelist: Vec::new(),
        }
    }

    /// Only these paths may be opened (seed 000's `$whiteRouteList`).
    pub fn whitelist(mut self, paths: &[&str]) -> Self {
        self.whitelist = paths.iter().map(|p| p.to_string()).collect();
        self
    }

    fn refuse(code: u32, msg: &str) -> Response {
        let mut r = json(&serde_json::json!({ "code": code, "msg": msg }));
        r.status(401);
        r
    }
}

impl Middleware for JwtAuth {
    fn process(&self, req: &mut HttpCtx<'_>, next: Next<'_>) -> Result<Response, Error> {
        let path = req.request().path().to_string();
        let auth = req.header("authorization").unwrap_or("").trim().to_string();
        let listed = self.whitelist.is_empty() || self.whitelist.contains(&path);
        if !listed || auth.is_empty() {
            return Ok(Self::refuse(JWT_EMPTY_ERR, "token required"));
        }
        let token = auth.strip_prefix("Bearer ").unwrap_or(&auth).trim();
        match decode::<serde_json::Value>(token, &self.key, &self.validation) {
            Ok(data) => {
                req.context_mut().set("jwt", data.claims);
                next.handle(req)
            }
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                Ok(Self::refuse(JWT_EXPIRED, "token expired"))
            }
            Err(e) => {
                log::info!("fd {}: JWT refused: {e}", req.fd());
                Ok(Self::refuse(DO_JWT_FAIL, "invalid token"))
            }
        }
    }
}
