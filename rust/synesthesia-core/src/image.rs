//! Borrowed views of interleaved uint8 images (HxWxC) with an arbitrary row stride, so that
//! numpy slices such as `frame[10:-10, 20:-20]` reach the kernels without a copy.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub struct ImageView<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    channels: usize,
    stride: usize,
}

#[derive(Debug)]
pub struct ImageViewMut<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
    channels: usize,
    stride: usize,
}

fn check_layout(
    name: &'static str,
    len: usize,
    width: usize,
    height: usize,
    channels: usize,
    stride: usize,
) -> Result<()> {
    if !matches!(channels, 1 | 3 | 4) {
        return Err(Error::invalid(name, format!("channel count must be 1, 3 or 4, got {channels}")));
    }
    if width == 0 || height == 0 {
        return Err(Error::invalid(name, format!("image is empty ({width}x{height})")));
    }
    let row = width * channels;
    if stride < row {
        return Err(Error::invalid(name, format!("row stride {stride} is shorter than a row ({row} bytes)")));
    }
    let needed = (height - 1) * stride + row;
    if len < needed {
        return Err(Error::invalid(name, format!("buffer holds {len} bytes, the layout needs {needed}")));
    }
    Ok(())
}

macro_rules! common {
    () => {
        pub fn width(&self) -> usize {
            self.width
        }
        pub fn height(&self) -> usize {
            self.height
        }
        pub fn channels(&self) -> usize {
            self.channels
        }
        /// Bytes from the start of one row to the start of the next.
        pub fn stride(&self) -> usize {
            self.stride
        }
        /// Bytes of pixel data in one row (`width * channels`).
        pub fn row_bytes(&self) -> usize {
            self.width * self.channels
        }
        pub fn row(&self, y: usize) -> &[u8] {
            let start = y * self.stride;
            &self.data[start..start + self.width * self.channels]
        }
        pub fn is_contiguous(&self) -> bool {
            self.stride == self.width * self.channels
        }
    };
}

impl<'a> ImageView<'a> {
    /// A view over `data`, which must hold `height` rows `stride` bytes apart (the last row
    /// may be short of the stride).
    pub fn new(data: &'a [u8], width: usize, height: usize, channels: usize, stride: usize) -> Result<Self> {
        check_layout("img", data.len(), width, height, channels, stride)?;
        Ok(Self { data, width, height, channels, stride })
    }

    /// A view over tightly packed rows.
    pub fn packed(data: &'a [u8], width: usize, height: usize, channels: usize) -> Result<Self> {
        Self::new(data, width, height, channels, width * channels)
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    common!();
}

impl<'a> ImageViewMut<'a> {
    pub fn new(data: &'a mut [u8], width: usize, height: usize, channels: usize, stride: usize) -> Result<Self> {
        check_layout("out", data.len(), width, height, channels, stride)?;
        Ok(Self { data, width, height, channels, stride })
    }

    pub fn packed(data: &'a mut [u8], width: usize, height: usize, channels: usize) -> Result<Self> {
        Self::new(data, width, height, channels, width * channels)
    }

    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        let n = self.width * self.channels;
        &mut self.data[start..start + n]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        self.data
    }

    pub fn as_view(&self) -> ImageView<'_> {
        ImageView {
            data: self.data,
            width: self.width,
            height: self.height,
            channels: self.channels,
            stride: self.stride,
        }
    }

    common!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_layouts() {
        let buf = vec![0u8; 100];
        assert!(ImageView::new(&buf, 4, 4, 2, 8).is_err());
        assert!(ImageView::new(&buf, 4, 4, 3, 11).is_err());
        assert!(ImageView::new(&buf, 10, 4, 3, 30).is_err());
        assert!(ImageView::new(&buf, 0, 4, 3, 30).is_err());
        let v = ImageView::new(&buf, 4, 4, 3, 20).unwrap();
        assert_eq!(v.row(3).len(), 12);
        assert!(!v.is_contiguous());
    }
}
