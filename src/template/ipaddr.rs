//! The `ipaddr` family of filters (`ansible.utils.ipaddr`, `ipv4`, `ipv6`,
//! `ipwrap`) for the queries inventories and templates commonly use:
//! `address`, `network`, `prefix`, `netmask`, `broadcast`, `host`, `net`,
//! `subnet`/`cidr`, `size`, `version`, `first_usable`, `last_usable`,
//! `private`/`public`, `ipv4`/`ipv6`, and an integer to pick the n-th
//! address of a network. Results follow the netaddr-based originals: a
//! value that is not an address gives `False`, a query that does not apply
//! gives `None`, and lists are filtered item by item.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// An address with its prefix length (`/32` or `/128` when none was
/// given). `ipnet` does the mask arithmetic; what is left here is
/// netaddr's counting (the size, the n-th address).
#[derive(Debug, Clone, Copy)]
struct Net(IpNet);

impl Net {
    fn ip(&self) -> IpAddr {
        self.0.addr()
    }

    fn prefix(&self) -> u8 {
        self.0.prefix_len()
    }

    fn bits(&self) -> u8 {
        self.0.max_prefix_len()
    }

    fn size(&self) -> u128 {
        let host_bits = self.bits() - self.prefix();
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    /// The address `n` places after the network address.
    fn nth(&self, n: u128) -> IpAddr {
        from_u128(self.ip(), as_u128(self.0.network()) + n)
    }

    fn is_private(&self) -> bool {
        match self.ip() {
            IpAddr::V4(a) => a.is_private() || a.is_loopback() || a.is_link_local(),
            IpAddr::V6(a) => {
                let s = a.segments()[0];
                (s & 0xfe00) == 0xfc00 || (s & 0xffc0) == 0xfe80 || a.is_loopback()
            }
        }
    }
}

fn as_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `n` as an address of the same family as `like` (`n` fits: it is
/// inside a network of that family).
fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

fn parse(text: &str) -> Option<Net> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let bits = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if n <= u32::from(bits) => n as u8,
            Ok(_) => return None,
            // A dotted netmask (`10.0.0.1/255.255.255.0`).
            Err(_) => ipnet::ipv4_mask_to_prefix(p.parse().ok()?).ok()?,
        },
    };
    IpNet::new(ip, prefix).ok().map(Net)
}

fn s(x: impl ToString) -> Value {
    Value::from(x.to_string())
}

fn query(v: &Value, n: &Net, q: &Value) -> Result<Value, Error> {
    let none = Value::from(());
    let fals = Value::from(false);
    if let Some(i) = q.as_i64() {
        // `'192.168.1.0/24' | ipaddr(5)` is `192.168.1.5/24`.
        let size = n.size() as i128;
        let idx = if i < 0 { size + i as i128 } else { i as i128 };
        if idx < 0 || idx >= size {
            return Ok(fals);
        }
        let ip = n.nth(idx as u128);
        return Ok(s(format!("{ip}/{}", n.prefix())));
    }
    let Some(q) = q.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "ipaddr: the query must be a string or an integer",
        ));
    };
    let single = n.size() == 1;
    let is_network_addr = n.ip() == n.0.network();
    // netaddr has no broadcast address for /31, /32 (and /127, /128).
    let has_broadcast = n.prefix() + 1 < n.bits();
    Ok(match q {
        "" => v.clone(),
        "address" | "ip" => {
            if single || !is_network_addr || !has_broadcast || n.bits() == 128 {
                s(n.ip())
            } else {
                none
            }
        }
        "host" => {
            if single || !is_network_addr {
                s(format!("{}/{}", n.ip(), n.prefix()))
            } else {
                none
            }
        }
        "network" => s(n.0.network()),
        "net" => {
            if !single && is_network_addr {
                s(n.0.trunc())
            } else {
                fals
            }
        }
        "subnet" | "cidr" => s(n.0.trunc()),
        "prefix" => Value::from(n.prefix()),
        "netmask" => s(n.0.netmask()),
        "hostmask" => s(n.0.hostmask()),
        "broadcast" => {
            if has_broadcast {
                s(n.0.broadcast())
            } else {
                none
            }
        }
        "size" => Value::from(n.size() as u64),
        "version" => Value::from(if n.bits() == 32 { 4 } else { 6 }),
        "ipv4" => {
            if n.bits() == 32 {
                v.clone()
            } else {
                fals
            }
        }
        "ipv6" => {
            if n.bits() == 128 {
                v.clone()
            } else {
                fals
            }
        }
        "first_usable" => {
            if n.size() > 2 {
                s(n.nth(1))
            } else {
                none
            }
        }
        "last_usable" => {
            if n.size() > 2 {
                s(from_u128(n.ip(), as_u128(n.0.broadcast()) - 1))
            } else {
                none
            }
        }
        "private" => {
            if n.is_private() {
                v.clone()
            } else {
                none
            }
        }
        "public" => {
            if n.is_private() {
                none
            } else {
                v.clone()
            }
        }
        "int" => Value::from(format!("{}/{}", as_u128(n.ip()), n.prefix())),
        other => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("ipaddr: unknown query '{other}'"),
            ))
        }
    })
}

fn apply(v: &Value, q: Option<Value>, version: Option<u8>) -> Result<Value, Error> {
    let q = q.unwrap_or_else(|| Value::from(""));
    if v.kind() == ValueKind::Seq {
        // Lists keep the items for which the query gives something.
        let mut out = Vec::new();
        for item in v.try_iter()? {
            let r = apply(&item, Some(q.clone()), version)?;
            if r.is_true() {
                out.push(r);
            }
        }
        return Ok(Value::from(out));
    }
    let text = match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_string(),
        // netaddr accepts integers as IPv4 addresses.
        ValueKind::Number => match v.as_i64().and_then(|i| u32::try_from(i).ok()) {
            Some(i) => Ipv4Addr::from(i).to_string(),
            None => return Ok(Value::from(false)),
        },
        _ => return Ok(Value::from(false)),
    };
    let Some(n) = parse(&text) else {
        return Ok(Value::from(false));
    };
    match (version, n.bits()) {
        (Some(4), 128) | (Some(6), 32) => return Ok(Value::from(false)),
        _ => {}
    }
    query(v, &n, &q)
}

pub(super) fn ipaddr(v: &Value, q: Option<Value>) -> Result<Value, Error> {
    apply(v, q, None)
}

pub(super) fn ipv4(v: &Value, q: Option<Value>) -> Result<Value, Error> {
    apply(v, q, Some(4))
}

pub(super) fn ipv6(v: &Value, q: Option<Value>) -> Result<Value, Error> {
    apply(v, q, Some(6))
}

/// Wrap IPv6 addresses in brackets (for URLs); other values pass through.
pub(super) fn ipwrap(v: &Value, q: Option<Value>) -> Result<Value, Error> {
    if v.kind() == ValueKind::Seq {
        let out: Result<Vec<_>, _> = v.try_iter()?.map(|i| ipwrap(&i, q.clone())).collect();
        return Ok(Value::from(out?));
    }
    let r = apply(v, q, None)?;
    match r.as_str().and_then(parse) {
        Some(n) if n.bits() == 128 => {
            let text = r.as_str().unwrap_or_default();
            Ok(match text.split_once('/') {
                Some((a, p)) => Value::from(format!("[{a}]/{p}")),
                None => Value::from(format!("[{text}]")),
            })
        }
        Some(_) => Ok(r),
        None => Ok(v.clone()),
    }
}
