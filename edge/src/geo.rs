//! Who is asking and from where: the client's address and location as the host knows them
//! (`req.cf()` and `CF-Connecting-IP` on Cloudflare; the socket peer and, in local mode
//! only, an `x-edge-country` header natively).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// An ISO 3166-1 alpha-2 country code, upper case (`GB`, `JP`). Cloudflare reports `XX` for
/// unknown and `T1` for Tor; both parse and simply match no country rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Country([u8; 2]);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a two-letter country code")]
pub struct InvalidCountry(pub String);

impl FromStr for Country {
    type Err = InvalidCountry;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().as_bytes() {
            &[a, b] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => {
                Ok(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(InvalidCountry(raw.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.0[0]), char::from(self.0[1]))
    }
}

/// The seven continents as Cloudflare's `cf.continent` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Continent {
    Africa,
    Antarctica,
    Asia,
    Europe,
    NorthAmerica,
    Oceania,
    SouthAmerica,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0:?} is not a continent code (AF, AN, AS, EU, NA, OC, SA)")]
pub struct InvalidContinent(pub String);

impl FromStr for Continent {
    type Err = InvalidContinent;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Ok(match raw.trim().to_ascii_uppercase().as_str() {
            "AF" => Self::Africa,
            "AN" => Self::Antarctica,
            "AS" => Self::Asia,
            "EU" => Self::Europe,
            "NA" => Self::NorthAmerica,
            "OC" => Self::Oceania,
            "SA" => Self::SouthAmerica,
            _ => return Err(InvalidContinent(raw.chars().take(16).collect())),
        })
    }
}

impl Continent {
    pub fn code(self) -> &'static str {
        match self {
            Self::Africa => "AF",
            Self::Antarctica => "AN",
            Self::Asia => "AS",
            Self::Europe => "EU",
            Self::NorthAmerica => "NA",
            Self::Oceania => "OC",
            Self::SouthAmerica => "SA",
        }
    }

    /// The continent a country lies on, for hosts that know only the country (the native
    /// host's `x-edge-country`). A small table of the shop's markets; others are `None` and
    /// fall back to the fallback pool unless a country rule names them.
    pub fn of_country(country: Country) -> Option<Self> {
        let code = country.to_string();
        let continent = match code.as_str() {
            "US" | "CA" | "MX" => Self::NorthAmerica,
            "BR" | "AR" | "CL" | "CO" | "PE" => Self::SouthAmerica,
            "GB" | "IE" | "FR" | "DE" | "NL" | "BE" | "ES" | "PT" | "IT" | "CH" | "AT" | "SE" | "NO" | "DK" | "FI"
            | "PL" | "CZ" | "UA" | "RO" | "GR" => Self::Europe,
            "JP" | "KR" | "CN" | "SG" | "IN" | "ID" | "TH" | "VN" | "PH" | "MY" | "HK" | "TW" => Self::Asia,
            "AU" | "NZ" => Self::Oceania,
            "ZA" | "NG" | "EG" | "KE" | "MA" => Self::Africa,
            "AQ" => Self::Antarctica,
            _ => return None,
        };
        Some(continent)
    }
}

impl fmt::Display for Continent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The client as the host sees it. Built by a [`ClientGeo`] implementation per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The address rate limits are keyed by (`None` only when the host truly cannot tell;
    /// such requests share one bucket).
    pub ip: Option<IpAddr>,
    pub country: Option<Country>,
    pub continent: Option<Continent>,
    /// Cloudflare data centre (`LHR`), for logs only.
    pub colo: Option<String>,
}

impl ClientInfo {
    pub fn from_ip(ip: IpAddr) -> Self {
        Self { ip: Some(ip), country: None, continent: None, colo: None }
    }

    /// Sets the country and, when unknown, its continent.
    pub fn with_country(mut self, country: Country) -> Self {
        self.country = Some(country);
        if self.continent.is_none() {
            self.continent = Continent::of_country(country);
        }
        self
    }
}

/// Finds out who sent a request. Natively: the socket peer, plus `x-edge-country` in local
/// mode; on Cloudflare: `CF-Connecting-IP` and `req.cf()` (see the worker crate).
pub trait ClientGeo {
    fn locate(&self, head: &http::request::Parts) -> ClientInfo;
}

/// The header that sets the client's country in local mode (the native host only; the
/// Worker never reads it, so a visitor cannot choose their pool in production).
pub const LOCAL_COUNTRY_HEADER: &str = "x-edge-country";

/// The native host's [`ClientGeo`]: the TCP peer's address; in local mode a valid
/// `x-edge-country` header sets the country, else `default_country`.
#[derive(Debug, Clone)]
pub struct LocalGeo {
    pub peer: Option<IpAddr>,
    pub trust_country_header: bool,
    pub default_country: Option<Country>,
}

impl ClientGeo for LocalGeo {
    fn locate(&self, head: &http::request::Parts) -> ClientInfo {
        let mut client = ClientInfo { ip: self.peer, country: None, continent: None, colo: Some("LOCAL".into()) };
        let from_header = self
            .trust_country_header
            .then(|| head.headers.get(LOCAL_COUNTRY_HEADER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Country>().ok());
        if let Some(country) = from_header.or(self.default_country) {
            client = client.with_country(country);
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_parse_case_insensitively_and_nothing_else() {
        assert_eq!("gb".parse::<Country>().unwrap().to_string(), "GB");
        for bad in ["", "G", "GBR", "G!", "é1"] {
            assert!(bad.parse::<Country>().is_err(), "{bad}");
        }
    }

    #[test]
    fn continents_round_trip() {
        for code in ["AF", "AN", "AS", "EU", "NA", "OC", "SA"] {
            assert_eq!(code.parse::<Continent>().unwrap().code(), code);
        }
        assert!("XX".parse::<Continent>().is_err());
    }
}
