//! The values configuration keys hold, as the key table ([`super::keys`]) handles them: parsed
//! from the text of a `CRONRAFT_*` variable or a flag, and shown as a TOML value.
//!
//! One trait, implemented once per Rust type a key has, so that a key's parsing and display
//! follow from its field's type: a list is comma-separated text, an optional value is unset by
//! empty text, a boolean is `true`/`false` (or `1`/`0`, `yes`/`no`, `on`/`off`).

use std::path::PathBuf;

use ipnet::IpNet;

use super::{parse_bool, split_list};
use crate::logging::LogFormat;
use crate::tls::ClientAuth;

/// A value a key can hold: parsed from a variable's or flag's text, shown as TOML.
pub trait Value {
    /// The type's name in the reference.
    const KIND: &'static str;
    fn set(&mut self, text: &str) -> Result<(), String>;
    fn show(&self) -> String;
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_list<T: std::fmt::Display>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(|i| toml_string(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const KIND: &'static str = "integer";
            fn set(&mut self, text: &str) -> Result<(), String> {
                *self = text.trim().parse().map_err(|_| "expected a whole number".to_string())?;
                Ok(())
            }
            fn show(&self) -> String {
                self.to_string()
            }
        }
        impl Value for Option<$t> {
            const KIND: &'static str = "integer";
            fn set(&mut self, text: &str) -> Result<(), String> {
                let mut v: $t = 0;
                v.set(text)?;
                *self = Some(v);
                Ok(())
            }
            fn show(&self) -> String {
                self.map(|v| v.to_string()).unwrap_or_default()
            }
        }
    )*};
}
integer!(u64, u32, usize);

impl Value for bool {
    const KIND: &'static str = "boolean";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = parse_bool(text.trim()).ok_or("expected true or false")?;
        Ok(())
    }
    fn show(&self) -> String {
        self.to_string()
    }
}

impl Value for String {
    const KIND: &'static str = "string";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = text.to_string();
        Ok(())
    }
    fn show(&self) -> String {
        toml_string(self)
    }
}

/// An optional string or path: empty text unsets it.
impl Value for Option<String> {
    const KIND: &'static str = "string";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = (!text.is_empty()).then(|| text.to_string());
        Ok(())
    }
    fn show(&self) -> String {
        self.as_deref().map(toml_string).unwrap_or_default()
    }
}

impl Value for PathBuf {
    const KIND: &'static str = "path";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = PathBuf::from(text);
        Ok(())
    }
    fn show(&self) -> String {
        toml_string(&self.display().to_string())
    }
}

impl Value for Option<PathBuf> {
    const KIND: &'static str = "path";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = (!text.is_empty()).then(|| PathBuf::from(text));
        Ok(())
    }
    fn show(&self) -> String {
        self.as_ref().map(|p| toml_string(&p.display().to_string())).unwrap_or_default()
    }
}

/// A list, comma-separated in a variable or flag.
impl Value for Vec<String> {
    const KIND: &'static str = "list of strings";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = split_list(text);
        Ok(())
    }
    fn show(&self) -> String {
        toml_list(self)
    }
}

impl Value for Option<Vec<String>> {
    const KIND: &'static str = "list of strings";
    fn set(&mut self, text: &str) -> Result<(), String> {
        *self = Some(split_list(text));
        Ok(())
    }
    fn show(&self) -> String {
        self.as_deref().map(toml_list).unwrap_or_default()
    }
}

impl Value for Vec<IpNet> {
    const KIND: &'static str = "list of CIDRs";
    fn set(&mut self, text: &str) -> Result<(), String> {
        let nets: Result<Vec<IpNet>, _> = split_list(text).iter().map(|n| n.parse::<IpNet>()).collect();
        *self = nets.map_err(|e| format!("expected CIDRs such as 10.0.0.0/8: {e}"))?;
        Ok(())
    }
    fn show(&self) -> String {
        toml_list(self)
    }
}

macro_rules! word {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const KIND: &'static str = "string";
            fn set(&mut self, text: &str) -> Result<(), String> {
                *self = text.trim().parse()?;
                Ok(())
            }
            fn show(&self) -> String {
                toml_string(self.as_str())
            }
        }
    )*};
}
word!(LogFormat, ClientAuth);
