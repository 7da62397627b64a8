//! The web UI's static files, on the API's port: plain GET and HEAD requests that
//! are not gRPC are answered from `RAMP_WEB_DIR`, and paths that name no file get
//! `index.html`, so the app's own routes (`/inbox`, `/forms/…`) load on reload.
//!
//! Every answer carries the headers that keep the app's tokens (in sessionStorage)
//! out of reach of injected scripts and framing pages: a Content-Security-Policy
//! that allows only the app's own scripts, `nosniff`, no framing and no referrer.
//! Files whose names carry the build's content hash are cached for a year;
//! `index.html` and everything else is revalidated. Text is gzip-compressed for
//! clients that accept it.

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use http::{HeaderValue, Method, Request, Response, header};
use tonic::body::Body;
use tower::ServiceExt;
use tower_http::compression::Compression;
use tower_http::services::{ServeDir, ServeFile};

use crate::middleware::Endpoints;

/// The policy for the app's pages. Scripts: the app's own files only (no inline
/// script, no eval; the browser tests run clean under it). Styles: the app's files
/// and inline `<style>`, which form-js's HTML fields carry. Images: also `data:` and
/// any https URL, as form-js image fields may name (an image reads no token).
/// Connections: this origin (the API) and, when `config.json` names one, the OpenID
/// Connect provider. Frames: this origin's only (form-js iframe fields pointing
/// elsewhere stay empty); objects and being framed: none.
fn content_security_policy(oidc_origin: Option<&str>) -> String {
    let connect = match oidc_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: https:; font-src 'self' data:; connect-src {connect}; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Hashed files may be cached for good: a new build has new names.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is checked with the server before each use.
const REVALIDATE: &str = "no-cache";

/// Answers the UI's requests from its folder; passes everything else on.
#[derive(Clone)]
pub struct WebUi {
    files: Option<Files>,
}

#[derive(Clone)]
struct Files {
    dir: Arc<PathBuf>,
    serve: Compression<ServeDir<ServeFile>>,
}

impl WebUi {
    /// `None`: no UI is served.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self {
            files: dir.map(|dir| {
                let index = dir.join("index.html");
                let serve = ServeDir::new(&dir)
                    .append_index_html_on_directories(true)
                    .fallback(ServeFile::new(index));
                Files {
                    dir: Arc::new(dir),
                    serve: Compression::new(serve),
                }
            }),
        }
    }
}

/// Whether a request is for the UI: a GET or HEAD that is not gRPC(-web).
fn for_the_ui<B>(request: &Request<B>) -> bool {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    (request.method() == Method::GET || request.method() == Method::HEAD) && !grpc
}

/// Whether a path names a file the build named by its content: Angular's
/// `main-DTYBAPWU.js`, `chunk-3KYCVT7U.js`, `styles-TZ7VGIMN.css`, `media/x-HASH.woff2`.
fn content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, extension)) = name.rsplit_once('.') else {
        return false;
    };
    let Some((_, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    !extension.is_empty()
        && hash.len() == 8
        && hash
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The OpenID Connect provider's origin from `config.json` (which the app reads to
/// sign users in there), if it names a usable one.
async fn oidc_origin(dir: &std::path::Path) -> Option<String> {
    let raw = tokio::fs::read(dir.join("config.json")).await.ok()?;
    let config: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    let issuer = config.get("oidcIssuer")?.as_str()?.trim();
    let origin = issuer.parse::<http::Uri>().ok().and_then(|uri| {
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme @ ("http" | "https")), Some(authority)) => {
                Some(format!("{scheme}://{authority}"))
            }
            _ => None,
        }
    });
    if origin.is_none() {
        tracing::warn!(
            issuer,
            "config.json: oidcIssuer is not an http(s) URL; the page may not reach it"
        );
    }
    origin
}

/// Adds the security and caching headers to an answer for `path`.
async fn secure<B>(dir: &std::path::Path, path: &str, response: &mut Response<B>) {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let cacheable =
        response.status().is_success() || response.status() == http::StatusCode::NOT_MODIFIED;
    let cache = if !html && cacheable && content_hashed(path) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let policy = if html {
        content_security_policy(oidc_origin(dir).await.as_deref())
    } else {
        content_security_policy(None)
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

impl Endpoints for WebUi {
    fn answer(&self, request: &Request<()>) -> Option<BoxFuture<'static, Response<Body>>> {
        let files = self.files.clone()?;
        if !for_the_ui(request) {
            return None;
        }
        let request = request.clone();
        Some(Box::pin(async move {
            let path = request.uri().path().to_owned();
            let mut response = match files.serve.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            secure(&files.dir, &path, &mut response).await;
            response.map(Body::new)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_with_a_build_hash_count_as_hashed() {
        for hashed in [
            "/main-DTYBAPWU.js",
            "/chunk-3KYCVT7U.js",
            "/styles-TZ7VGIMN.css",
            "/media/inter-ABCD1234.woff2",
        ] {
            assert!(content_hashed(hashed), "{hashed}");
        }
        for plain in [
            "/",
            "/index.html",
            "/favicon.svg",
            "/config.json",
            "/forms/0190-abc",
            "/main-dtybapwu.js",
            "/chunk-3KYCVT7.js",
            "/inbox",
        ] {
            assert!(!content_hashed(plain), "{plain}");
        }
    }

    #[test]
    fn the_policy_allows_no_inline_script_and_no_framing() {
        let policy = content_security_policy(Some("https://login.example.com"));
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe-eval"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert!(
            policy.contains("connect-src 'self' https://login.example.com;"),
            "{policy}"
        );
    }
}
