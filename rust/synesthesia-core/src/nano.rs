//! The fused nano path: the full frame in, the JPEG of the downscaled frame out, in one call.
//!
//! The downscaled frame lives only in this encoder's scratch buffer (reused frame after frame),
//! so callers never see, allocate or pay a round trip for the intermediate.

use crate::error::{Error, Result};
use crate::image::{ImageView, ImageViewMut};
use crate::jpeg::{EncodeOptions, JpegEncoder};
use crate::resize::{self, Method};
use crate::simd::SimdLevel;

pub struct NanoEncoder {
    scale: usize,
    method: Method,
    jpeg: JpegEncoder,
    scratch: Vec<u8>,
}

impl NanoEncoder {
    /// `scale` divides each axis (4: 1280x704 -> 320x176). `method` is how pixels are picked.
    pub fn new(scale: usize, method: Method, options: EncodeOptions) -> Result<Self> {
        if !(1..=64).contains(&scale) {
            return Err(Error::invalid("scale", format!("must be 1..=64, got {scale}")));
        }
        Ok(Self { scale, method, jpeg: JpegEncoder::new(options)?, scratch: Vec::new() })
    }

    pub fn scale(&self) -> usize {
        self.scale
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn options(&self) -> &EncodeOptions {
        self.jpeg.options()
    }

    /// The size of the frame that is encoded for a `width` x `height` input.
    pub fn output_size(&self, width: usize, height: usize) -> (usize, usize) {
        ((width / self.scale).max(1), (height / self.scale).max(1))
    }

    fn downscale(&mut self, frame: &ImageView) -> Result<(usize, usize)> {
        let (w, h) = self.output_size(frame.width(), frame.height());
        let c = frame.channels();
        self.scratch.resize(w * h * c, 0);
        let mut dst = ImageViewMut::packed(&mut self.scratch, w, h, c)?;
        let level = SimdLevel::resolve(self.jpeg.options().simd)?;
        resize::resize_with(frame, &mut dst, self.method, level)?;
        Ok((w, h))
    }

    pub fn encode(&mut self, frame: &ImageView, out: &mut Vec<u8>) -> Result<()> {
        if self.scale == 1 {
            return self.jpeg.encode(frame, out);
        }
        let (w, h) = self.downscale(frame)?;
        let small = ImageView::packed(&self.scratch, w, h, frame.channels())?;
        self.jpeg.encode(&small, out)
    }

    pub fn encode_into(&mut self, frame: &ImageView, out: &mut [u8]) -> Result<usize> {
        if self.scale == 1 {
            return self.jpeg.encode_into(frame, out);
        }
        let (w, h) = self.downscale(frame)?;
        let small = ImageView::packed(&self.scratch, w, h, frame.channels())?;
        self.jpeg.encode_into(&small, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::QuantTables;

    fn frame(w: usize, h: usize) -> Vec<u8> {
        (0..w * h * 3).map(|i| ((i * 7 + i / 3 / w * 13) % 251) as u8).collect()
    }

    #[test]
    fn fused_path_equals_resize_then_encode() {
        let (w, h) = (1280, 704);
        let data = frame(w, h);
        let src = ImageView::packed(&data, w, h, 3).unwrap();
        for method in [Method::Nearest, Method::Area, Method::Bilinear] {
            let opts = EncodeOptions { qtables: Some(QuantTables::turbo()), ..Default::default() };
            let mut nano = NanoEncoder::new(4, method, opts.clone()).unwrap();
            assert_eq!(nano.output_size(w, h), (320, 176));
            let mut fused = Vec::new();
            nano.encode(&src, &mut fused).unwrap();

            let mut small = vec![0u8; 320 * 176 * 3];
            let mut dst = ImageViewMut::packed(&mut small, 320, 176, 3).unwrap();
            resize::resize(&src, &mut dst, method).unwrap();
            let expected = crate::jpeg::encode(&ImageView::packed(&small, 320, 176, 3).unwrap(), &opts).unwrap();
            assert_eq!(fused, expected, "{method:?}");

            let mut buf = vec![0u8; fused.len()];
            assert_eq!(nano.encode_into(&src, &mut buf).unwrap(), fused.len());
            assert_eq!(buf, fused);
        }
    }

    #[test]
    fn rejects_bad_scale_and_tiny_buffers() {
        assert!(matches!(
            NanoEncoder::new(0, Method::Nearest, EncodeOptions::default()),
            Err(Error::InvalidArgument { name: "scale", .. })
        ));
        let data = frame(64, 64);
        let src = ImageView::packed(&data, 64, 64, 3).unwrap();
        let mut nano = NanoEncoder::new(4, Method::Area, EncodeOptions::default()).unwrap();
        let mut tiny = [0u8; 16];
        assert!(matches!(nano.encode_into(&src, &mut tiny), Err(Error::BufferTooSmall { .. })));
    }
}
