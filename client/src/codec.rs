//! The worker service's codec: `prost` messages, as `tonic_prost`'s, but
//! the encoder reserves a message's whole length before writing it.
//! tonic's encode buffer starts at 8 KiB and `prost` writes into it field
//! by field, so a slice of ~100 KB grew it four times, copying what was
//! written each time; the decoder already reserves the length the
//! message's header gives.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::Status;

/// Encodes `T`, decodes `U`; both sides of every call use it.
pub struct SizedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SizedCodec<T, U> {
    fn default() -> Self {
        SizedCodec(PhantomData)
    }
}

type ProstDecoder<T, U> = <tonic_prost::ProstCodec<T, U> as Codec>::Decoder;

impl<T, U> Codec for SizedCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = SizedEncoder<T>;
    type Decoder = ProstDecoder<T, U>;

    fn encoder(&mut self) -> SizedEncoder<T> {
        SizedEncoder(PhantomData)
    }

    fn decoder(&mut self) -> ProstDecoder<T, U> {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(BufferSettings::default())
    }
}

pub struct SizedEncoder<T>(PhantomData<T>);

impl<T: prost::Message> Encoder for SizedEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // `encoded_len` walks the whole message: once, here. `encode`
        // would walk it again to check the room just reserved; the buffer
        // grows as written to anyway, so `encode_raw` cannot run short.
        buf.reserve(item.encoded_len());
        item.encode_raw(buf);
        Ok(())
    }
}
