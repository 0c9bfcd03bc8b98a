//! nf_tables rule expressions: the small virtual machine a rule is.
//!
//! A rule is a list of expressions run in order over a packet and a set of
//! registers: loads (`payload`, `meta`, `ct`, `fib`, `numgen`), tests
//! (`cmp`, `lookup`), and actions (`immediate` verdicts, `nat`, `masq`,
//! `reject`). A test that fails ends the rule. Each expression is encoded
//! as the kernel's `nft_<name>` module parses it; the constants are those
//! of `linux/netfilter/nf_tables.h`.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::attrs::Attrs;

/// The verdict register.
pub const REG_VERDICT: u32 = 0;
/// The first 32-bit data register (NFT_REG32_00); concatenations use the
/// ones after it.
pub const REG32_0: u32 = 8;

/// Transport protocol numbers as `meta l4proto` loads them.
pub const IPPROTO_TCP: u8 = 6;
/// UDP.
pub const IPPROTO_UDP: u8 = 17;
/// SCTP.
pub const IPPROTO_SCTP: u8 = 132;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// Where a payload load starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    /// The network header (IPv4).
    Network = 1,
    /// The transport header.
    Transport = 2,
}

/// `meta` keys used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The packet mark.
    Mark = 3,
    /// The transport protocol.
    L4Proto = 16,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// Equal.
    Eq = 0,
    /// Not equal.
    Neq = 1,
}

/// What a rule decides.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Let the packet through this hook.
    Accept,
    /// Drop it.
    Drop,
    /// Back to the calling chain.
    Return,
    /// Run a chain, then come back.
    Jump(String),
    /// Run a chain, and do not come back.
    Goto(String),
}

impl Verdict {
    /// Encodes the verdict as NFTA_DATA_VERDICT inside `attrs`.
    pub(super) fn encode_data(&self, attrs: &mut Attrs) {
        let verdict = attrs.nest(NFTA_DATA_VERDICT);
        let (code, chain): (i32, Option<&str>) = match self {
            Verdict::Accept => (1, None),
            Verdict::Drop => (0, None),
            Verdict::Return => (-5, None),
            Verdict::Jump(c) => (-3, Some(c)),
            Verdict::Goto(c) => (-4, Some(c)),
        };
        attrs.be32(NFTA_VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            attrs.string(NFTA_VERDICT_CHAIN, chain);
        }
        attrs.end(verdict);
    }

    /// The chain this verdict refers to.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// One expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Load `len` bytes at `offset` from a header into `dreg`.
    Payload {
        /// Which header.
        base: PayloadBase,
        /// Byte offset in it.
        offset: u32,
        /// Bytes to load.
        len: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Load packet metadata into `dreg`.
    Meta {
        /// What to load.
        key: MetaKey,
        /// Destination register.
        dreg: u32,
    },
    /// Set packet metadata from `sreg`.
    MetaSet {
        /// What to set.
        key: MetaKey,
        /// Source register.
        sreg: u32,
    },
    /// Load the conntrack state bits (host order) into `dreg`.
    CtState {
        /// Destination register.
        dreg: u32,
    },
    /// Load the conntrack status bits (host order) into `dreg`.
    CtStatus {
        /// Destination register.
        dreg: u32,
    },
    /// Load the route type of the destination address (`fib daddr type`,
    /// host order) into `dreg`.
    FibDaddrType {
        /// Destination register.
        dreg: u32,
    },
    /// A random number below `modulus` (host order) into `dreg`.
    NumgenRandom {
        /// The bound.
        modulus: u32,
        /// Destination register.
        dreg: u32,
    },
    /// Compare `sreg` with `data`; the rule stops when false.
    Cmp {
        /// Source register.
        sreg: u32,
        /// Operator.
        op: CmpOp,
        /// The value, as the register holds it.
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// AND mask.
        mask: Vec<u8>,
        /// XOR value (as long as the mask).
        xor: Vec<u8>,
    },
    /// Look `sreg` up in a named set; with `dreg`, a map lookup whose value
    /// goes there (REG_VERDICT for a verdict map).
    Lookup {
        /// The set's name.
        set: String,
        /// Key register.
        sreg: u32,
        /// Value register for maps.
        dreg: Option<u32>,
    },
    /// Add `sreg` to a dynamic set, or refresh its timeout (`update
    /// @set { key }`).
    DynsetUpdate {
        /// The set's name.
        set: String,
        /// Key register.
        sreg: u32,
        /// The element's lifetime, milliseconds.
        timeout_ms: u64,
    },
    /// Load constant data into `dreg`.
    Immediate {
        /// Destination register.
        dreg: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A verdict.
    Verdict(Verdict),
    /// Destination NAT to the address in `addr_reg` and port in
    /// `port_reg`.
    Dnat {
        /// Register holding the IPv4 address.
        addr_reg: u32,
        /// Register holding the port (network order).
        port_reg: u32,
    },
    /// Source NAT to the outgoing interface's address, with random ports.
    Masquerade,
    /// Refuse with ICMP port unreachable.
    Reject,
    /// Refuse a TCP connection with a reset.
    RejectTcpReset,
}

const NFT_PAYLOAD: [u16; 4] = [1, 2, 3, 4]; // dreg, base, offset, len

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::CtState { .. } | Expr::CtStatus { .. } => "ct",
            Expr::FibDaddrType { .. } => "fib",
            Expr::NumgenRandom { .. } => "numgen",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::DynsetUpdate { .. } => "dynset",
            Expr::Immediate { .. } | Expr::Verdict(_) => "immediate",
            Expr::Dnat { .. } => "nat",
            Expr::Masquerade => "masq",
            Expr::Reject | Expr::RejectTcpReset => "reject",
        }
    }

    fn encode_data(&self, a: &mut Attrs) {
        match self {
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                a.be32(NFT_PAYLOAD[0], *dreg)
                    .be32(NFT_PAYLOAD[1], *base as u32)
                    .be32(NFT_PAYLOAD[2], *offset)
                    .be32(NFT_PAYLOAD[3], *len);
            }
            // NFTA_META_DREG 1, KEY 2, SREG 3
            Expr::Meta { key, dreg } => {
                a.be32(1, *dreg).be32(2, *key as u32);
            }
            Expr::MetaSet { key, sreg } => {
                a.be32(2, *key as u32).be32(3, *sreg);
            }
            // NFTA_CT_DREG 1, KEY 2 (NFT_CT_STATE 0)
            Expr::CtState { dreg } => {
                a.be32(1, *dreg).be32(2, 0);
            }
            // NFT_CT_STATUS 2
            Expr::CtStatus { dreg } => {
                a.be32(1, *dreg).be32(2, 2);
            }
            // NFTA_FIB_DREG 1, RESULT 2 (ADDRTYPE 3), FLAGS 3 (DADDR 2)
            Expr::FibDaddrType { dreg } => {
                a.be32(1, *dreg).be32(2, 3).be32(3, 2);
            }
            // NFTA_NG_DREG 1, MODULUS 2, TYPE 3 (RANDOM 1), OFFSET 4
            Expr::NumgenRandom { modulus, dreg } => {
                a.be32(1, *dreg).be32(2, *modulus).be32(3, 1).be32(4, 0);
            }
            // NFTA_CMP_SREG 1, OP 2, DATA 3
            Expr::Cmp { sreg, op, data } => {
                a.be32(1, *sreg).be32(2, *op as u32);
                value(a, 3, data);
            }
            // NFTA_BITWISE_SREG 1, DREG 2, LEN 3, MASK 4, XOR 5
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                a.be32(1, *sreg).be32(2, *dreg).be32(3, mask.len() as u32);
                value(a, 4, mask);
                value(a, 5, xor);
            }
            // NFTA_LOOKUP_SET 1, SREG 2, DREG 3
            Expr::Lookup { set, sreg, dreg } => {
                a.string(1, set).be32(2, *sreg);
                if let Some(dreg) = dreg {
                    a.be32(3, *dreg);
                }
            }
            // NFTA_DYNSET_SET_NAME 1, OP 3 (UPDATE 1), SREG_KEY 4, TIMEOUT 6
            Expr::DynsetUpdate {
                set,
                sreg,
                timeout_ms,
            } => {
                a.string(1, set)
                    .be32(3, 1)
                    .be32(4, *sreg)
                    .be64(6, *timeout_ms);
            }
            // NFTA_IMMEDIATE_DREG 1, DATA 2
            Expr::Immediate { dreg, data } => {
                a.be32(1, *dreg);
                value(a, 2, data);
            }
            Expr::Verdict(v) => {
                a.be32(1, REG_VERDICT);
                let data = a.nest(2);
                v.encode_data(a);
                a.end(data);
            }
            // NFTA_NAT_TYPE 1 (DNAT 1), FAMILY 2, REG_ADDR_MIN 3, REG_PROTO_MIN 5
            Expr::Dnat { addr_reg, port_reg } => {
                a.be32(1, 1)
                    .be32(2, libc_nfproto_ipv4())
                    .be32(3, *addr_reg)
                    .be32(5, *port_reg);
            }
            // NFTA_MASQ_FLAGS 1: NF_NAT_RANGE_PROTO_RANDOM_FULLY
            Expr::Masquerade => {
                a.be32(1, 0x10);
            }
            // NFTA_REJECT_TYPE 1 (ICMP_UNREACH 0), ICMP_CODE 2 (port unreachable)
            Expr::Reject => {
                a.be32(1, 0).bytes(2, &[3]);
            }
            // NFTA_REJECT_TYPE 1 (TCP_RST 1)
            Expr::RejectTcpReset => {
                a.be32(1, 1);
            }
        }
    }
}

fn libc_nfproto_ipv4() -> u32 {
    2
}

/// Writes `data` as a nested NFTA_DATA_VALUE under `kind`.
fn value(a: &mut Attrs, kind: u16, data: &[u8]) {
    let n = a.nest(kind);
    a.bytes(NFTA_DATA_VALUE, data);
    a.end(n);
}

/// Encodes a set element's key or a constant as NFTA_DATA_VALUE under
/// `kind`.
pub(super) fn encode_value(a: &mut Attrs, kind: u16, data: &[u8]) {
    value(a, kind, data);
}

/// Encodes a rule's expression list (NFTA_RULE_EXPRESSIONS) into `a`.
pub(super) fn encode_list(a: &mut Attrs, kind: u16, exprs: &[Expr]) {
    let list = a.nest(kind);
    for e in exprs {
        let elem = a.nest(NFTA_LIST_ELEM);
        a.string(NFTA_EXPR_NAME, e.name());
        let data = a.nest(NFTA_EXPR_DATA);
        e.encode_data(a);
        a.end(data);
        a.end(elem);
    }
    a.end(list);
}

// Matches, as the proxy's rules are written: each a few expressions.

/// `ip saddr` (or `daddr` with `dst`) within `net` (or not, with `negate`).
pub fn ip_addr_in(dst: bool, net: Ipv4Net, negate: bool) -> Vec<Expr> {
    let mut v = vec![Expr::Payload {
        base: PayloadBase::Network,
        offset: if dst { 16 } else { 12 },
        len: 4,
        dreg: REG32_0,
    }];
    if net.prefix_len() < 32 {
        v.push(Expr::Bitwise {
            sreg: REG32_0,
            dreg: REG32_0,
            mask: net.netmask().octets().to_vec(),
            xor: vec![0; 4],
        });
    }
    v.push(Expr::Cmp {
        sreg: REG32_0,
        op: if negate { CmpOp::Neq } else { CmpOp::Eq },
        data: net.network().octets().to_vec(),
    });
    v
}

/// `ip saddr` into the first data register.
pub fn ip_saddr() -> Expr {
    Expr::Payload {
        base: PayloadBase::Network,
        offset: 12,
        len: 4,
        dreg: REG32_0,
    }
}

/// `ip saddr . ip daddr` into the first two data registers (the key of a
/// set of address pairs).
pub fn saddr_daddr() -> Vec<Expr> {
    vec![
        ip_saddr(),
        Expr::Payload {
            base: PayloadBase::Network,
            offset: 16,
            len: 4,
            dreg: REG32_0 + 1,
        },
    ]
}

/// `dnat to numgen random mod n map @map`: one of `n` endpoints picked
/// uniformly, from a map of index → `ipv4_addr . inet_service` (see
/// [`endpoint_value`]). Changing the endpoints changes only the map's
/// elements, never this rule, unless their number changes.
pub fn dnat_to_random_of(map: &str, n: u32) -> Vec<Expr> {
    vec![
        Expr::NumgenRandom {
            modulus: n,
            dreg: REG32_0,
        },
        Expr::Lookup {
            set: map.into(),
            sreg: REG32_0,
            dreg: Some(REG32_0 + 1),
        },
        Expr::Dnat {
            addr_reg: REG32_0 + 1,
            port_reg: REG32_0 + 2,
        },
    ]
}

/// The key of an endpoint map's element `index`, as `numgen` leaves it.
pub fn endpoint_index(index: u32) -> [u8; 4] {
    index.to_ne_bytes()
}

/// An endpoint map's value: the address, then the port in network order,
/// padded to two registers.
pub fn endpoint_value(ip: Ipv4Addr, port: u16) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[..4].copy_from_slice(&ip.octets());
    v[4..6].copy_from_slice(&port.to_be_bytes());
    v
}

/// `ip saddr == ip`.
pub fn ip_saddr_is(ip: Ipv4Addr) -> Vec<Expr> {
    ip_addr_in(false, Ipv4Net::from(ip), false)
}

/// `meta l4proto == proto`.
pub fn l4proto_is(proto: u8) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: REG32_0,
        },
        Expr::Cmp {
            sreg: REG32_0,
            op: CmpOp::Eq,
            data: vec![proto],
        },
    ]
}

/// `ct state new`.
pub fn ct_state_new() -> Vec<Expr> {
    const NEW: u32 = 1 << 3;
    bit_is_set(Expr::CtState { dreg: REG32_0 }, NEW)
}

/// `ct status dnat`: the connection's destination was translated.
pub fn ct_status_dnat() -> Vec<Expr> {
    const IPS_DST_NAT: u32 = 1 << 5;
    bit_is_set(Expr::CtStatus { dreg: REG32_0 }, IPS_DST_NAT)
}

/// `load` (into the first data register), then whether `bit` is set.
fn bit_is_set(load: Expr, bit: u32) -> Vec<Expr> {
    vec![
        load,
        Expr::Bitwise {
            sreg: REG32_0,
            dreg: REG32_0,
            mask: bit.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: REG32_0,
            op: CmpOp::Neq,
            data: vec![0; 4],
        },
    ]
}

/// `fib daddr type local`.
pub fn daddr_is_local() -> Vec<Expr> {
    const RTN_LOCAL: u32 = 2;
    vec![
        Expr::FibDaddrType { dreg: REG32_0 },
        Expr::Cmp {
            sreg: REG32_0,
            op: CmpOp::Eq,
            data: RTN_LOCAL.to_ne_bytes().to_vec(),
        },
    ]
}

/// `meta mark & bit != 0` (or `== 0` with `clear`).
pub fn mark_has(bit: u32, clear: bool) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::Mark,
            dreg: REG32_0,
        },
        Expr::Bitwise {
            sreg: REG32_0,
            dreg: REG32_0,
            mask: bit.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: REG32_0,
            op: if clear { CmpOp::Eq } else { CmpOp::Neq },
            data: vec![0; 4],
        },
    ]
}

/// `meta mark set meta mark | bit` (`set`) or `& !bit` (not `set`).
pub fn mark_update(bit: u32, set: bool) -> Vec<Expr> {
    let (mask, xor) = if set { (!bit, bit) } else { (!bit, 0) };
    vec![
        Expr::Meta {
            key: MetaKey::Mark,
            dreg: REG32_0,
        },
        Expr::Bitwise {
            sreg: REG32_0,
            dreg: REG32_0,
            mask: mask.to_ne_bytes().to_vec(),
            xor: xor.to_ne_bytes().to_vec(),
        },
        Expr::MetaSet {
            key: MetaKey::Mark,
            sreg: REG32_0,
        },
    ]
}

/// `ip daddr . meta l4proto . th dport` into three 32-bit registers from
/// REG32_0 (each field padded to four bytes), the key of the service maps.
pub fn daddr_proto_port() -> Vec<Expr> {
    let mut v = vec![Expr::Payload {
        base: PayloadBase::Network,
        offset: 16,
        len: 4,
        dreg: REG32_0,
    }];
    v.extend(proto_port(REG32_0 + 1));
    v
}

/// `meta l4proto . th dport` into two 32-bit registers from `reg`.
pub fn proto_port(reg: u32) -> Vec<Expr> {
    vec![
        Expr::Meta {
            key: MetaKey::L4Proto,
            dreg: reg,
        },
        Expr::Payload {
            base: PayloadBase::Transport,
            offset: 2,
            len: 2,
            dreg: reg + 1,
        },
    ]
}

/// `numgen random mod n == 0`: true with probability 1/n.
pub fn one_in(n: u32) -> Vec<Expr> {
    vec![
        Expr::NumgenRandom {
            modulus: n,
            dreg: REG32_0,
        },
        Expr::Cmp {
            sreg: REG32_0,
            op: CmpOp::Eq,
            data: 0u32.to_ne_bytes().to_vec(),
        },
    ]
}

/// `dnat to ip:port`.
pub fn dnat_to(ip: Ipv4Addr, port: u16) -> Vec<Expr> {
    vec![
        Expr::Immediate {
            dreg: REG32_0,
            data: ip.octets().to_vec(),
        },
        Expr::Immediate {
            dreg: REG32_0 + 1,
            data: port.to_be_bytes().to_vec(),
        },
        Expr::Dnat {
            addr_reg: REG32_0,
            port_reg: REG32_0 + 1,
        },
    ]
}
