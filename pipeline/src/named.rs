//! The stably named enums of the crate ([`DropReason`](crate::DropReason),
//! [`StageId`](crate::StageId)), written once: the enum from a table of rows (variant,
//! discriminant, stable name, one-line description), `ALL`, `COUNT`, `index`, `name`,
//! `description`, and `Display`, `FromStr` (with its error type) and `Serialize`, all by
//! the stable name. A leaf: one macro.

/// `named_enum! { /// docs
/// pub enum Type, error UnknownType "unknown type {0:?}"; Variant = 0, "name", "what"; ... }`
macro_rules! named_enum {
    (
        $(#[$meta:meta])* pub enum $ty:ident, error $err:ident $message:literal;
        $($(#[$doc:meta])* $variant:ident = $idx:literal, $name:literal, $desc:literal;)*
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $ty {
            $($(#[$doc])* #[doc = concat!("`", $name, "`: ", $desc, ".")] $variant = $idx,)*
        }

        impl $ty {
            /// How many there are.
            pub const COUNT: usize = [$($idx),*].len();

            /// Every one, in discriminant order (`ALL[x as usize] == x`).
            pub const ALL: [$ty; $ty::COUNT] = [$($ty::$variant,)*];

            /// Index into per-value arrays (the discriminant).
            #[inline]
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The stable name (stats keys, alerts, the table, telemetry).
            #[inline]
            pub const fn name(self) -> &'static str {
                match self { $($ty::$variant => $name,)* }
            }

            /// What it means, in one line.
            pub const fn description(self) -> &'static str {
                match self { $($ty::$variant => $desc,)* }
            }
        }

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
