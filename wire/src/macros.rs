//! The two macros every header view is written with, so that a header declares its view
//! and its fixed-offset fields once.
//!
//! * `view!` declares the view struct over a buffer `T: AsRef<[u8]>` with
//!   `new_unchecked`, `new_checked` (which calls the view's `check_len`), `into_inner`
//!   and `AsRef<[u8]>`; given `check_len(MIN);` it also writes the simple length check
//!   ([`Error::Truncated`](crate::Error::Truncated) below `MIN` bytes).
//! * `fields!` declares getters (on `AsRef<[u8]>`) and setters (on `AsMut<[u8]>`) at fixed
//!   offsets, one line a field, the setter's doc as a block doc comment between the two
//!   names:
//!
//!   ```text
//!   /// Source port.
//!   src_port, /** Set the source port. */ set_src_port: u16 at field::SRC_PORT.start;
//!   ```
//!
//!   The kinds of field:
//!   * `T at OFFSET`: a whole field of a type with a [`FieldValue`] (integers,
//!     addresses, the newtypes given one by `newtype_field!`);
//!   * `T in W at OFFSET, bits MASK >> SHIFT` (shift optional): a bit field of the word
//!     `W` at `OFFSET`, the setter keeping the word's other bits;
//!   * `bool in W at OFFSET, flag MASK`: one flag bit of the word `W`;
//!   * `bytes at OFFSET`: the rest of the buffer after a fixed offset, as `&[u8]` and
//!     `&mut [u8]` (empty, never a panic, when the buffer is shorter).
//!
//!   The setter is optional. The whole-field accessors index: after `check_len` every
//!   offset they are given is inside the buffer (see the crate's contract).

use std::net::Ipv4Addr;

use crate::ethernet::EthernetAddress;

/// A value stored big-endian at a fixed offset of a header.
pub(crate) trait FieldValue: Sized {
    /// Read the value at `at`.
    fn get(data: &[u8], at: usize) -> Self;
    /// Write the value at `at`.
    fn put(self, data: &mut [u8], at: usize);
}

/// [`FieldValue`] for unsigned integers, big-endian.
macro_rules! be_int_field {
    ($($int:ty),*) => {$(
        impl FieldValue for $int {
            #[inline(always)]
            fn get(data: &[u8], at: usize) -> Self {
                const LEN: usize = core::mem::size_of::<$int>();
                let mut be = [0u8; LEN];
                be.copy_from_slice(&data[at..at + LEN]);
                <$int>::from_be_bytes(be)
            }
            #[inline(always)]
            fn put(self, data: &mut [u8], at: usize) {
                let be = self.to_be_bytes();
                data[at..at + be.len()].copy_from_slice(&be);
            }
        }
    )*};
}

be_int_field!(u8, u16, u32);

impl FieldValue for Ipv4Addr {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        Ipv4Addr::from(u32::get(data, at))
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        u32::from(self).put(data, at);
    }
}

impl FieldValue for EthernetAddress {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        let mut a = [0u8; 6];
        a.copy_from_slice(&data[at..at + 6]);
        EthernetAddress(a)
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        data[at..at + 6].copy_from_slice(&self.0);
    }
}

/// [`FieldValue`] for newtypes over `u8` or `u16` (`EtherType(pub u16)`, ...).
macro_rules! newtype_field {
    ($($name:ident($inner:ty)),* $(,)?) => {$(
        impl $crate::macros::FieldValue for $name {
            #[inline(always)]
            fn get(data: &[u8], at: usize) -> Self {
                $name(<$inner as $crate::macros::FieldValue>::get(data, at))
            }
            #[inline(always)]
            fn put(self, data: &mut [u8], at: usize) {
                $crate::macros::FieldValue::put(self.0, data, at);
            }
        }
    )*};
}

/// The view struct of a header and its constructors; see the [module](self) docs.
macro_rules! view {
    ($(#[$meta:meta])* pub struct $name:ident; $($(#[$cmeta:meta])* check_len($min:expr);)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap without checking; see the module contract.
            #[inline]
            pub const fn new_unchecked(buffer: T) -> $name<T> {
                $name { buffer }
            }

            /// Wrap after [`check_len`](Self::check_len).
            #[inline]
            pub fn new_checked(buffer: T) -> $crate::Result<$name<T>> {
                let view = Self::new_unchecked(buffer);
                view.check_len()?;
                Ok(view)
            }

            /// The underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            $(
                $(#[$cmeta])*
                #[inline]
                pub fn check_len(&self) -> $crate::Result<()> {
                    if self.buffer.as_ref().len() < $min {
                        Err($crate::Error::Truncated)
                    } else {
                        Ok(())
                    }
                }
            )?
        }

        impl<T: AsRef<[u8]>> AsRef<[u8]> for $name<T> {
            fn as_ref(&self) -> &[u8] {
                self.buffer.as_ref()
            }
        }
    };
}

/// Getters and setters at fixed offsets; see the [module](self) docs.
macro_rules! fields {
    ($view:ident {$(
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : $ty:ident $(in $word:ident)? at $at:expr $(, $how:ident $mask:ident $(>> $shift:tt)?)?;
    )*}) => {
        impl<T: AsRef<[u8]>> $view<T> {$(
            field_get! {
                $(#[$gm])* $g: $ty $(in $word)? at $at $(, $how $mask $(>> $shift)?)?
            }
        )*}

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {$(
            field_set! {
                [$($(#[$sm])* $s)?] $ty $(in $word)? at $at $(, $how $mask $(>> $shift)?)?
            }
        )*}
    };
}

/// One getter of `fields!`.
macro_rules! field_get {
    ($(#[$m:meta])* $g:ident: bytes at $at:expr) => {
        $(#[$m])*
        #[inline]
        pub fn $g(&self) -> &[u8] {
            self.buffer.as_ref().get($at..).unwrap_or(&[])
        }
    };
    ($(#[$m:meta])* $g:ident: bool in $word:ident at $at:expr, flag $flag:ident) => {
        $(#[$m])*
        #[inline]
        pub fn $g(&self) -> bool {
            <$word as $crate::macros::FieldValue>::get(self.buffer.as_ref(), $at) & $flag != 0
        }
    };
    (
        $(#[$m:meta])* $g:ident: $ty:ident in $word:ident at $at:expr,
        bits $mask:ident $(>> $shift:tt)?
    ) => {
        $(#[$m])*
        #[inline]
        pub fn $g(&self) -> $ty {
            let word = <$word as $crate::macros::FieldValue>::get(self.buffer.as_ref(), $at);
            ((word & $mask) $(>> $shift)?) as $ty
        }
    };
    ($(#[$m:meta])* $g:ident: $ty:ident at $at:expr) => {
        $(#[$m])*
        #[inline]
        pub fn $g(&self) -> $ty {
            <$ty as $crate::macros::FieldValue>::get(self.buffer.as_ref(), $at)
        }
    };
}

/// One setter of `fields!` (nothing for a field without one).
macro_rules! field_set {
    ([] $($field:tt)*) => {};
    ([$(#[$m:meta])* $s:ident] bytes at $at:expr) => {
        $(#[$m])*
        #[inline]
        pub fn $s(&mut self) -> &mut [u8] {
            self.buffer.as_mut().get_mut($at..).unwrap_or(&mut [])
        }
    };
    ([$(#[$m:meta])* $s:ident] bool in $word:ident at $at:expr, flag $flag:ident) => {
        $(#[$m])*
        #[inline]
        pub fn $s(&mut self, value: bool) {
            let data = self.buffer.as_mut();
            let word = <$word as $crate::macros::FieldValue>::get(data, $at);
            let word = if value { word | $flag } else { word & !$flag };
            $crate::macros::FieldValue::put(word, data, $at);
        }
    };
    (
        [$(#[$m:meta])* $s:ident] $ty:ident in $word:ident at $at:expr,
        bits $mask:ident $(>> $shift:tt)?
    ) => {
        $(#[$m])*
        #[inline]
        pub fn $s(&mut self, value: $ty) {
            let data = self.buffer.as_mut();
            let word = <$word as $crate::macros::FieldValue>::get(data, $at);
            let bits = ((value as $word) $(<< $shift)?) & $mask;
            $crate::macros::FieldValue::put((word & !$mask) | bits, data, $at);
        }
    };
    ([$(#[$m:meta])* $s:ident] $ty:ident at $at:expr) => {
        $(#[$m])*
        #[inline]
        pub fn $s(&mut self, value: $ty) {
            $crate::macros::FieldValue::put(value, self.buffer.as_mut(), $at);
        }
    };
}
