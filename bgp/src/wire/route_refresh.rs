//! ROUTE-REFRESH (RFC 2918) with the message subtypes of enhanced route refresh (RFC 7313).
//!
//! ```text
//!  0       7      15      23      31
//! +-------+-------+-------+-------+
//! |      AFI      | Subtyp|  SAFI |
//! +-------+-------+-------+-------+
//! ```

use bytes::{BufMut, BytesMut};
use serde::Serialize;

use super::error::{DecodeError, DecodeErrorKind};
use super::family::Family;
use super::reader::Reader;

/// The message subtype (RFC 7313 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RouteRefreshSubtype {
    /// 0: a request to re-advertise the Adj-RIB-Out.
    Request,
    /// 1: Beginning of Route Refresh.
    BeginningOfRouteRefresh,
    /// 2: End of Route Refresh.
    EndOfRouteRefresh,
    /// Anything else: RFC 7313 says to ignore the message.
    Reserved(u8),
}

impl RouteRefreshSubtype {
    fn from_u8(v: u8) -> RouteRefreshSubtype {
        match v {
            0 => RouteRefreshSubtype::Request,
            1 => RouteRefreshSubtype::BeginningOfRouteRefresh,
            2 => RouteRefreshSubtype::EndOfRouteRefresh,
            v => RouteRefreshSubtype::Reserved(v),
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            RouteRefreshSubtype::Request => 0,
            RouteRefreshSubtype::BeginningOfRouteRefresh => 1,
            RouteRefreshSubtype::EndOfRouteRefresh => 2,
            RouteRefreshSubtype::Reserved(v) => v,
        }
    }
}

/// A ROUTE-REFRESH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: Family,
    /// Request, BoRR or EoRR.
    pub subtype: RouteRefreshSubtype,
}

impl RouteRefresh {
    /// A plain request for a family.
    pub fn request(family: Family) -> RouteRefresh {
        RouteRefresh {
            family,
            subtype: RouteRefreshSubtype::Request,
        }
    }

    pub(crate) fn decode_body(
        body: &[u8],
        base: usize,
        whole: &[u8],
    ) -> Result<RouteRefresh, DecodeError> {
        let mut r = Reader::new(body, base);
        let bad = || {
            DecodeError::new(
                base - 19,
                DecodeErrorKind::RouteRefreshLength((body.len() + 19) as u16),
            )
            .with_data(whole)
        };
        if body.len() != 4 {
            return Err(bad());
        }
        let (Some(afi), Some(sub), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
            return Err(bad());
        };
        Ok(RouteRefresh {
            family: Family::new(afi, safi),
            subtype: RouteRefreshSubtype::from_u8(sub),
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u16(self.family.afi);
        out.put_u8(self.subtype.to_u8());
        out.put_u8(self.family.safi);
    }
}
