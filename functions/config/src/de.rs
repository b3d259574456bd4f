//! The serde side of [`Env::parse`]: a settings struct is a map from its field names (the
//! variables) to their text, and each text is parsed by the type of its field.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

use crate::{ConfigError, Env, parse_bool};

/// Errors inside the deserializer. Serde's own messages (`custom`) know neither the key nor
/// the value; [`Fields::next_value_seed`] adds both before the error leaves.
#[derive(Debug)]
pub(crate) enum Error {
    Config(ConfigError),
    Custom(String),
}

impl Error {
    pub(crate) fn into_config(self) -> ConfigError {
        match self {
            Self::Config(e) => e,
            // Only reachable for settings that are not structs, a programming error.
            Self::Custom(reason) => ConfigError::Invalid { key: "<settings>", value: String::new(), reason },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::Custom(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Self::Config(ConfigError::Missing(field))
    }
}

pub(crate) struct EnvDeserializer<'a> {
    pub(crate) env: &'a Env,
}

impl<'de> de::Deserializer<'de> for EnvDeserializer<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(Error::Custom("settings must be a struct with named fields".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields { env: self.env, fields, next: 0, current: None })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// Walks the struct's fields, yielding those that are set.
struct Fields<'a> {
    env: &'a Env,
    fields: &'static [&'static str],
    next: usize,
    current: Option<(&'static str, &'a str)>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        while let Some(&key) = self.fields.get(self.next) {
            self.next += 1;
            if self.env.is_not_utf8(key) {
                return Err(Error::Config(ConfigError::Invalid {
                    key,
                    value: "<not UTF-8>".into(),
                    reason: "must be UTF-8 text".into(),
                }));
            }
            if let Some(raw) = self.env.get(key) {
                self.current = Some((key, raw));
                return seed.deserialize(key.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (key, raw) = self.current.take().ok_or_else(|| Error::Custom("value without a key".into()))?;
        seed.deserialize(Text { key, raw }).map_err(|e| match e {
            Error::Custom(reason) => Error::Config(ConfigError::invalid(key, raw, reason)),
            other => other,
        })
    }
}

/// One variable's text, parsed by what the field asks for.
struct Text<'a> {
    key: &'static str,
    raw: &'a str,
}

impl Text<'_> {
    fn number<T: std::str::FromStr>(&self, what: &str) -> Result<T, Error> {
        self.raw.parse().map_err(|_| Error::Custom(format!("expected {what}")))
    }
}

macro_rules! numbers {
    ($($method:ident $visit:ident $ty:ty, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.number::<$ty>($what)?)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Text<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_str(self.raw)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_bool(parse_bool(self.key, self.raw).map_err(Error::Config)?)
    }

    numbers! {
        deserialize_i8 visit_i8 i8, "an integer";
        deserialize_i16 visit_i16 i16, "an integer";
        deserialize_i32 visit_i32 i32, "an integer";
        deserialize_i64 visit_i64 i64, "an integer";
        deserialize_u8 visit_u8 u8, "a non-negative integer";
        deserialize_u16 visit_u16 u16, "a non-negative integer";
        deserialize_u32 visit_u32 u32, "a non-negative integer";
        deserialize_u64 visit_u64 u64, "a non-negative integer";
        deserialize_f32 visit_f32 f32, "a number";
        deserialize_f64 visit_f64 f64, "a number";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Unset and empty variables never reach here: they are absent fields.
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A list is comma-separated: `a, b,c`.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let key = self.key;
        let items = self.raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(move |raw| Text { key, raw });
        visitor.visit_seq(de::value::SeqDeserializer::new(items))
    }

    /// Unit variants by name, e.g. `DB_POOL_MODE=transaction`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(de::value::StrDeserializer::<Error>::new(self.raw))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Error> {
        Err(Error::Custom("a variable holds text, not a structure".into()))
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct tuple tuple_struct map identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Text<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}
