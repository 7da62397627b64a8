//! A request that cannot be read is the client's fault: INVALID_ARGUMENT, not
//! INTERNAL. tonic answers INTERNAL when a request message does not decode (garbage,
//! nesting past protobuf's recursion limit, a string that is not UTF-8), when its
//! frames are cut off or carry the compressed flag with no compression agreed, and
//! tonic-web when a grpc-web-text body is not base64. Left so, any caller could drive
//! the server's INTERNAL rate, which alerts on bugs, and clients would retry what
//! can never succeed.
//!
//! These failures all happen before the service runs, so they arrive as a
//! trailers-only response (the status in the headers); this step, between gRPC-web
//! and the services, rewrites exactly those whose message is one of the decoding
//! failures below, keeping the message. A status sent after the first response
//! message, or any other INTERNAL, passes unchanged. The hostile-input tests send
//! each failure and check its code, so a tonic release that rewords one is noticed.

use http::{HeaderMap, Response};
use tonic::{Code, Status};

/// How the messages of tonic's (and prost's, and tonic-web's) request-decoding
/// failures begin.
const DECODING_FAILURES: [&str; 5] = [
    // prost: a message that does not decode.
    "failed to decode Protobuf message",
    // tonic: a body that ends inside a frame.
    "Unexpected EOF decoding stream",
    // tonic: the compressed flag without an encoding, or a flag other than 0 and 1.
    "protocol error: received message with",
    // tonic: a compressed message that does not decompress.
    "Error decompressing",
    // tonic-web: a grpc-web-text body that is not base64 (or not a body at all).
    "tonic-web: ",
];

/// Rewrites a response that says a request could not be read (see `rewrite`); the
/// server maps every response through it.
pub fn readable_status<B>(mut response: Response<B>) -> Response<B> {
    rewrite(response.headers_mut());
    response
}

/// Turns a trailers-only INTERNAL of a decoding failure into INVALID_ARGUMENT.
fn rewrite(headers: &mut HeaderMap) {
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    if status.code() != Code::Internal
        || !DECODING_FAILURES
            .iter()
            .any(|failure| status.message().starts_with(failure))
    {
        return;
    }
    tracing::info!(problem = status.message(), "a request could not be read");
    let refused =
        Status::invalid_argument(format!("the request cannot be read: {}", status.message()));
    headers.remove("grpc-status-details-bin");
    if refused.add_header(headers).is_err() {
        // The message could not be a header value: say it without the detail.
        let _ = Status::invalid_argument("the request cannot be read").add_header(headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(status: Status) -> Status {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        rewrite(&mut headers);
        Status::from_header_map(&headers).unwrap()
    }

    #[test]
    fn decoding_failures_become_invalid_argument_with_their_message() {
        for message in [
            "failed to decode Protobuf message: invalid wire type value: 7",
            "Unexpected EOF decoding stream.",
            "protocol error: received message with compressed-flag but no grpc-encoding was specified",
            "tonic-web: Invalid symbol 37, offset 0.",
        ] {
            let status = rewritten(Status::internal(message));
            assert_eq!(status.code(), Code::InvalidArgument, "{message}");
            assert!(status.message().ends_with(message), "{status:?}");
        }
    }

    #[test]
    fn other_statuses_pass_unchanged() {
        for status in [
            Status::internal("internal error"),
            Status::unavailable("failed to decode Protobuf message"),
            Status::not_found("form task not found"),
        ] {
            let (code, message) = (status.code(), status.message().to_owned());
            let after = rewritten(status);
            assert_eq!((after.code(), after.message()), (code, message.as_str()));
        }
        let mut headers = HeaderMap::new();
        rewrite(&mut headers);
        assert!(headers.is_empty(), "a response with no status stays so");
    }
}
