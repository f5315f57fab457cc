//! The impls a stably named enum ([`DropReason`](crate::DropReason),
//! [`StageId`](crate::StageId)) gets from its `ALL` and `name()`: `Display`, `FromStr`
//! (with its error type) and `Serialize`, all by the stable name. A leaf: one macro.

/// `named_enum!(Type, UnknownType, "unknown type {0:?}")`: the impls of a named enum and the error of a
/// string that names none.
macro_rules! named_enum {
    ($ty:ident, $err:ident, $message:literal) => {
        impl core::fmt::Display for $ty {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }

        #[doc = concat!("A string that names no [`", stringify!($ty), "`].")]
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[error($message)]
        pub struct $err(pub String);

        impl core::str::FromStr for $ty {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::ALL.iter().copied().find(|r| r.name() == s).ok_or_else(|| $err(s.to_owned()))
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}
