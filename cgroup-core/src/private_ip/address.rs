//! The private address of a gid: 127.0.0.0 | gid (gid 2001 -> 127.0.7.209), as the talk's
//! kernel patch computed it and as bpf/private_ip.bpf.c rewrites binds.

use std::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::nss::UserInfo;

/// The largest gid that fits in the low 24 bits of 127.0.0.0/8.
pub const MAX_PRIVATE_GID: u32 = 0x00ff_ffff;

/// The private address of `gid`, or why it has none.
pub fn private_address(gid: u32, min_gid: u32) -> std::result::Result<Ipv4Addr, String> {
    if gid < min_gid {
        return Err(format!(
            "is below [private_ip] min_gid {min_gid} (not confined)"
        ));
    }
    if gid > MAX_PRIVATE_GID {
        return Err(format!(
            "is above {MAX_PRIVATE_GID} (does not fit in 127.0.0.0/8)"
        ));
    }
    Ok(Ipv4Addr::from(0x7f00_0000 | gid))
}

/// The private address of a user (by primary gid), as a typed error.
pub fn private_address_of(user: &UserInfo, min_gid: u32) -> Result<Ipv4Addr> {
    private_address(user.gid, min_gid).map_err(|reason| Error::NoPrivateAddress {
        user: user.name.clone(),
        gid: user.gid,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_example() {
        assert_eq!(
            private_address(2001, 2000),
            Ok(Ipv4Addr::new(127, 0, 7, 209))
        );
    }

    #[test]
    fn bounds() {
        assert!(private_address(1999, 2000).is_err());
        assert_eq!(
            private_address(MAX_PRIVATE_GID, 2000),
            Ok(Ipv4Addr::new(127, 255, 255, 255))
        );
        assert!(private_address(MAX_PRIVATE_GID + 1, 2000).is_err());
    }

    #[test]
    fn typed_error_names_the_user() {
        let user = UserInfo {
            name: "alice".into(),
            uid: 1000,
            gid: 100,
        };
        let e = private_address_of(&user, 2000).unwrap_err();
        assert!(matches!(e, Error::NoPrivateAddress { gid: 100, .. }));
        assert!(e.to_string().contains("alice"), "{e}");
    }
}
