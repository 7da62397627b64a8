//! The protobuf codec of ramp's generated services and clients: tonic's prost codec
//! with a small first buffer.
//!
//! tonic gives every response stream an encode buffer of its own for as long as the
//! stream lives, 8 KiB by default. An idle PendingForms stream sends a heartbeat now
//! and then, so with many streams open most of that memory would sit unused; the
//! buffer starts small here and grows when a message needs more (a snapshot, a form
//! with its schema).

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The first size of each encode and decode buffer.
const BUFFER_SIZE: usize = 512;
/// tonic's default: a stream yields to the runtime after this many encoded bytes.
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// Named in `build.rs` (`codec_path`) for every generated service and client.
#[derive(Debug, Clone, Copy)]
pub struct CompactCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for CompactCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CompactCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}
