//! The system's IANA time zone name, without platform frameworks (see Cargo.toml).

use std::fmt;

/// Why the time zone could not be read.
#[derive(Debug)]
pub enum GetTimezoneError {
    FailedParsingString,
    IoError(std::io::Error),
    OsError,
}

impl fmt::Display for GetTimezoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetTimezoneError::FailedParsingString => f.write_str("GetTimezoneError::FailedParsingString"),
            GetTimezoneError::IoError(e) => write!(f, "GetTimezoneError::IoError({e})"),
            GetTimezoneError::OsError => f.write_str("GetTimezoneError::OsError"),
        }
    }
}

impl std::error::Error for GetTimezoneError {}

impl From<std::io::Error> for GetTimezoneError {
    fn from(e: std::io::Error) -> Self {
        GetTimezoneError::IoError(e)
    }
}

/// The IANA name of the system time zone, e.g. `Europe/Berlin`: the part after `zoneinfo/` of the
/// /etc/localtime link (Linux: /usr/share/zoneinfo/…, macOS: /var/db/timezone/zoneinfo/…), else
/// the contents of /etc/timezone.
pub fn get_timezone() -> Result<String, GetTimezoneError> {
    from_localtime_link().or_else(|_| from_etc_timezone())
}

fn from_localtime_link() -> Result<String, GetTimezoneError> {
    let target = std::fs::read_link("/etc/localtime")?;
    let target = target.to_str().ok_or(GetTimezoneError::FailedParsingString)?;
    zone_of(target).map(str::to_string).ok_or(GetTimezoneError::FailedParsingString)
}

fn zone_of(link: &str) -> Option<&str> {
    let (_, zone) = link.rsplit_once("zoneinfo/")?;
    (!zone.is_empty()).then_some(zone)
}

fn from_etc_timezone() -> Result<String, GetTimezoneError> {
    let s = std::fs::read_to_string("/etc/timezone")?;
    let s = s.trim();
    if s.is_empty() {
        Err(GetTimezoneError::FailedParsingString)
    } else {
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_from_links() {
        assert_eq!(zone_of("/usr/share/zoneinfo/Europe/Berlin"), Some("Europe/Berlin"));
        assert_eq!(zone_of("../usr/share/zoneinfo/Etc/UTC"), Some("Etc/UTC"));
        assert_eq!(zone_of("/var/db/timezone/zoneinfo/America/New_York"), Some("America/New_York"));
        assert_eq!(zone_of("/usr/share/zoneinfo/"), None);
        assert_eq!(zone_of("/etc/other"), None);
    }
}
