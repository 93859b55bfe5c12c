//! Versions and the flavor, read from `version.php` (`$OC_Version`, `$OC_VersionString`,
//! `$OC_Edition`, `$vendor`) with the literal reader, and from the config's `version` key.
//!
//! Reads bytes handed to it; touches no file.

use super::phpconfig::parse_php_file;
use super::value::PhpValue;
use std::fmt;
use std::str::FromStr;

/// Which product the code is, from `version.php`'s `$vendor` (serialized as that `$vendor`;
/// shown as the product's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    OwnCloud,
    Nextcloud,
}

impl Flavor {
    /// `$vendor` as written in `version.php`.
    pub fn from_vendor(vendor: &str) -> Option<Flavor> {
        match vendor {
            "owncloud" => Some(Flavor::OwnCloud),
            "nextcloud" => Some(Flavor::Nextcloud),
            _ => None,
        }
    }

    /// `$vendor` as `version.php` writes it.
    pub fn vendor(self) -> &'static str {
        match self {
            Flavor::OwnCloud => "owncloud",
            Flavor::Nextcloud => "nextcloud",
        }
    }

    /// The product name as the product writes it.
    pub fn name(self) -> &'static str {
        match self {
            Flavor::OwnCloud => "ownCloud",
            Flavor::Nextcloud => "Nextcloud",
        }
    }

    /// The log file name in the data directory when `logfile` is not set.
    pub fn default_log_name(self) -> &'static str {
        match self {
            Flavor::OwnCloud => "owncloud.log",
            Flavor::Nextcloud => "nextcloud.log",
        }
    }

    /// `log_type` when the config does not set it.
    pub fn default_log_type(self) -> &'static str {
        match self {
            Flavor::OwnCloud => "owncloud",
            Flavor::Nextcloud => "file",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A four-part version (`10.15.2.0`). Ordered part by part; missing parts count as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub [u32; 4]);

impl Version {
    pub fn major(self) -> u32 {
        self.0[0]
    }
    pub fn minor(self) -> u32 {
        self.0[1]
    }
    pub fn patch(self) -> u32 {
        self.0[2]
    }
    pub fn build(self) -> u32 {
        self.0[3]
    }

    /// `$OC_Version`: an array of 1 to 4 non-negative integers.
    pub fn from_php(v: &PhpValue) -> Option<Version> {
        let a = v.as_array()?;
        if a.is_empty() || a.len() > 4 {
            return None;
        }
        let mut parts = [0u32; 4];
        for (slot, v) in parts.iter_mut().zip(a.values()) {
            *slot = u32::try_from(v.as_int()?).ok()?;
        }
        Some(Version(parts))
    }
}

impl FromStr for Version {
    type Err = String;
    /// `10`, `10.15`, `10.15.2` or `10.15.2.0`.
    fn from_str(s: &str) -> Result<Version, String> {
        let bad = || format!("{s:?} is not a version like 10.15.2.0");
        let mut parts = [0u32; 4];
        for (n, p) in s.split('.').enumerate() {
            if n == 4 || p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            parts[n] = p.parse().map_err(|_| bad())?;
        }
        Ok(Version(parts))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// What `version.php` says about the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeVersion {
    pub flavor: Flavor,
    /// `$OC_Version`, e.g. `10.15.2.0`.
    pub version: Version,
    /// `$OC_VersionString`, e.g. `10.15.2`.
    pub version_string: String,
    /// `$OC_Edition`: `Community` or `Enterprise` on ownCloud, empty on Nextcloud.
    pub edition: String,
    /// `$OC_Channel` (`stable`, …) if set.
    pub channel: Option<String>,
}

/// Read `version.php`. The message says what is missing or wrong, without the path (the caller
/// adds it).
pub fn read_version_php(src: &[u8]) -> Result<CodeVersion, String> {
    let file = parse_php_file(src).map_err(|e| e.to_string())?;
    let text = |name: &str| {
        file.var(name)
            .and_then(PhpValue::as_str)
            .map(str::to_string)
    };
    let vendor = text("vendor").ok_or("it does not set `$vendor`")?;
    let flavor = Flavor::from_vendor(&vendor).ok_or_else(|| {
        format!("`$vendor` is {vendor:?}; ocmigrate knows \"owncloud\" and \"nextcloud\"")
    })?;
    let version = file
        .var("OC_Version")
        .and_then(Version::from_php)
        .ok_or("`$OC_Version` is missing or not an array of up to four integers")?;
    Ok(CodeVersion {
        flavor,
        version,
        version_string: text("OC_VersionString").unwrap_or_else(|| {
            let [a, b, c, _] = version.0;
            format!("{a}.{b}.{c}")
        }),
        edition: text("OC_Edition").unwrap_or_default(),
        channel: text("OC_Channel"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNCLOUD: &str = "<?php \n$OC_Version = array(10,15,2,0);\n$OC_VersionString = '10.15.2';\n$OC_Edition = 'Community';\n$OC_Channel = 'stable';\n$OC_VersionCanBeUpgradedFrom = array (\n  'owncloud' =>\n  array (\n    '10.11' => true,\n    '10.12' => true,\n  ),\n);\n$OC_Build = '2024-10-23T09:07:49+00:00 c3a7e5b06e2fcd12de31a5aaa2d5c5d9fcab2eb6';\n$vendor = 'owncloud';\n";

    const NEXTCLOUD: &str = "<?php \n$OC_Version = array(33,0,1,2);\n$OC_VersionString = '33.0.1';\n$OC_Edition = '';\n$OC_Channel = 'stable';\n$OC_VersionCanBeUpgradedFrom = array (\n  'nextcloud' => \n  array (\n    '32.0' => true,\n    '33.0' => true,\n  ),\n  'owncloud' => \n  array (\n    '10.13' => true,\n  ),\n);\n$OC_Build = '2025-01-01T00:00:00+00:00 0123';\n$vendor = 'nextcloud';\n";

    #[test]
    fn reads_owncloud_and_nextcloud() {
        let oc = read_version_php(OWNCLOUD.as_bytes()).unwrap();
        assert_eq!(oc.flavor, Flavor::OwnCloud);
        assert_eq!(oc.version, Version([10, 15, 2, 0]));
        assert_eq!(oc.version_string, "10.15.2");
        assert_eq!(oc.edition, "Community");
        assert_eq!(oc.channel.as_deref(), Some("stable"));
        let nc = read_version_php(NEXTCLOUD.as_bytes()).unwrap();
        assert_eq!(nc.flavor, Flavor::Nextcloud);
        assert_eq!(nc.version.to_string(), "33.0.1.2");
        assert_eq!(nc.edition, "");
    }

    #[test]
    fn vendor_problems_are_named() {
        let e = read_version_php(b"<?php $OC_Version = array(1,2,3,4);").unwrap_err();
        assert!(e.contains("$vendor"), "{e}");
        let e = read_version_php(b"<?php $OC_Version = [1]; $vendor = 'acme';").unwrap_err();
        assert!(e.contains("acme"), "{e}");
        let e = read_version_php(b"<?php $vendor = 'owncloud'; $OC_Version = '10';").unwrap_err();
        assert!(e.contains("OC_Version"), "{e}");
    }

    #[test]
    fn versions_parse_and_order() {
        let v: Version = "10.15.2.0".parse().unwrap();
        assert_eq!(v, Version([10, 15, 2, 0]));
        assert_eq!("10.15".parse::<Version>().unwrap(), Version([10, 15, 0, 0]));
        assert!("10.15.2.0".parse::<Version>().unwrap() < "10.16".parse().unwrap());
        assert!(Version([9, 99, 0, 0]) < Version([10, 0, 0, 0]));
        assert!(Version([33, 0, 1, 2]) > Version([33, 0, 1, 1]));
        for bad in [
            "",
            "10.",
            ".1",
            "1.2.3.4.5",
            "a.b",
            "10.-1",
            "1 .2",
            "99999999999",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        assert_eq!(v.to_string(), "10.15.2.0");
        assert_eq!((v.major(), v.minor(), v.patch(), v.build()), (10, 15, 2, 0));
    }
}
