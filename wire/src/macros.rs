//! The two macros every header view is written with, so that a header declares its view
//! and its fixed-offset fields once.
//!
//! * [`view!`] declares the view struct over a buffer `T: AsRef<[u8]>` with
//!   `new_unchecked`, `new_checked` (which calls the view's `check_len`), `into_inner`
//!   and `AsRef<[u8]>`; given `check_len(MIN);` it also writes the simple length check
//!   ([`Error::Truncated`](crate::Error::Truncated) below `MIN` bytes).
//! * [`fields!`] declares getters (on `AsRef<[u8]>`) and setters (on `AsMut<[u8]>`) at fixed
//!   offsets, each field on one line:
//!
//!   ```text
//!   /// Getter doc.
//!   getter, /// Setter doc.
//!   setter: Type at OFFSET;                          // a whole field (FieldValue)
//!   getter, setter: u8 in u16 at OFFSET, bits MASK >> SHIFT;   // a bit field of a word
//!   getter, setter: bool in u8 at OFFSET, flag MASK;           // one flag bit of a word
//!   getter, setter: bytes from OFFSET;  // the rest of the buffer, as &[u8] / &mut [u8]
//!   ```
//!
//!   The setter is optional. Field access indexes: after `check_len` every offset given is
//!   inside the buffer (see the crate's contract), and `bytes from` clamps.

use std::net::Ipv4Addr;

use crate::ethernet::EthernetAddress;
use crate::{read_u16, read_u32, write_u16, write_u32};

/// A value stored big-endian at a fixed offset of a header.
pub(crate) trait FieldValue: Sized {
    /// Read the value at `at`.
    fn get(data: &[u8], at: usize) -> Self;
    /// Write the value at `at`.
    fn put(self, data: &mut [u8], at: usize);
}

impl FieldValue for u8 {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        data[at]
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        data[at] = self;
    }
}

impl FieldValue for u16 {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        read_u16(data, at)
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        write_u16(data, at, self);
    }
}

impl FieldValue for u32 {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        read_u32(data, at)
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        write_u32(data, at, self);
    }
}

impl FieldValue for Ipv4Addr {
    #[inline(always)]
    fn get(data: &[u8], at: usize) -> Self {
        Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3])
    }
    #[inline(always)]
    fn put(self, data: &mut [u8], at: usize) {
        data[at..at + 4].copy_from_slice(&self.octets());
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
    // Entry: the view's name and the field lines.
    ($view:ident { $($body:tt)* }) => {
        fields!(@munch $view [] [] $($body)*);
    };

    // All lines read: one impl block of getters, one of setters.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]) => {
        impl<T: AsRef<[u8]>> $view<T> { $($get)* }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> { $($set)* }
    };

    // A bit field at the bottom of its word: a shift of 0.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : $ty:ident in $word:ident at $at:expr, bits $mask:ident;
        $($rest:tt)*
    ) => {
        fields!(@munch $view [$($get)*] [$($set)*]
            $(#[$gm])* $g $(, $(#[$sm])* $s)?
            : $ty in $word at $at, bits $mask >> 0;
            $($rest)*
        );
    };

    // A bit field of a word: `(word & MASK) >> SHIFT`.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : $ty:ident in $word:ident at $at:expr, bits $mask:ident >> $shift:tt;
        $($rest:tt)*
    ) => {
        fields!(@munch $view
            [$($get)*
                $(#[$gm])*
                #[inline]
                pub fn $g(&self) -> $ty {
                    let data = self.buffer.as_ref();
                    let word = <$word as $crate::macros::FieldValue>::get(data, $at);
                    ((word & $mask) >> $shift) as $ty
                }
            ]
            [$($set)* $(
                $(#[$sm])*
                #[inline]
                pub fn $s(&mut self, value: $ty) {
                    let data = self.buffer.as_mut();
                    let word = <$word as $crate::macros::FieldValue>::get(data, $at);
                    let word = (word & !$mask) | (((value as $word) << $shift) & $mask);
                    $crate::macros::FieldValue::put(word, data, $at);
                }
            )?]
            $($rest)*
        );
    };

    // One flag bit of a word, as a bool.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : bool in $word:ident at $at:expr, flag $mask:ident;
        $($rest:tt)*
    ) => {
        fields!(@munch $view
            [$($get)*
                $(#[$gm])*
                #[inline]
                pub fn $g(&self) -> bool {
                    let data = self.buffer.as_ref();
                    <$word as $crate::macros::FieldValue>::get(data, $at) & $mask != 0
                }
            ]
            [$($set)* $(
                $(#[$sm])*
                #[inline]
                pub fn $s(&mut self, value: bool) {
                    let data = self.buffer.as_mut();
                    let word = <$word as $crate::macros::FieldValue>::get(data, $at);
                    let word = if value { word | $mask } else { word & !$mask };
                    $crate::macros::FieldValue::put(word, data, $at);
                }
            )?]
            $($rest)*
        );
    };

    // Everything from a fixed offset to the end of the buffer.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : bytes from $at:expr;
        $($rest:tt)*
    ) => {
        fields!(@munch $view
            [$($get)*
                $(#[$gm])*
                #[inline]
                pub fn $g(&self) -> &[u8] {
                    self.buffer.as_ref().get($at..).unwrap_or(&[])
                }
            ]
            [$($set)* $(
                $(#[$sm])*
                #[inline]
                pub fn $s(&mut self) -> &mut [u8] {
                    self.buffer.as_mut().get_mut($at..).unwrap_or(&mut [])
                }
            )?]
            $($rest)*
        );
    };

    // A whole field of a type with a `FieldValue`.
    (@munch $view:ident [$($get:tt)*] [$($set:tt)*]
        $(#[$gm:meta])* $g:ident $(, $(#[$sm:meta])* $s:ident)?
        : $ty:ident at $at:expr;
        $($rest:tt)*
    ) => {
        fields!(@munch $view
            [$($get)*
                $(#[$gm])*
                #[inline]
                pub fn $g(&self) -> $ty {
                    <$ty as $crate::macros::FieldValue>::get(self.buffer.as_ref(), $at)
                }
            ]
            [$($set)* $(
                $(#[$sm])*
                #[inline]
                pub fn $s(&mut self, value: $ty) {
                    $crate::macros::FieldValue::put(value, self.buffer.as_mut(), $at);
                }
            )?]
            $($rest)*
        );
    };
}
