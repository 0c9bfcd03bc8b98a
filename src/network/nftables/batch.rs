//! nf_tables transactions: one batch of messages, applied by the kernel
//! all at once or not at all.
//!
//! A [`Batch`] collects table, chain, set, element and rule messages
//! between NFNL_MSG_BATCH_BEGIN and NFNL_MSG_BATCH_END, and [`Batch::commit`]
//! sends them in one `sendmsg` on a NETLINK_NETFILTER socket. The kernel
//! validates the whole batch, then either commits it (packets see the old
//! rule set or the new one, never a mix) or aborts it and reports the
//! failing messages. Only the last message asks for an acknowledgement;
//! failures are reported whatever the flags, so the reply for the last
//! sequence number ends the exchange.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use super::attrs::Attrs;
use super::expr::{Expr, Verdict, encode_list, encode_value};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
/// NFPROTO_IPV4: the `ip` family.
const FAMILY_IP: u8 = 2;

// enum nf_tables_msg_types
const NEWTABLE: u16 = 0;
const DELTABLE: u16 = 2;
const NEWCHAIN: u16 = 3;
const DELCHAIN: u16 = 5;
const NEWRULE: u16 = 6;
const DELRULE: u16 = 8;
const NEWSET: u16 = 9;
const DELSET: u16 = 11;
const NEWSETELEM: u16 = 12;
const DELSETELEM: u16 = 14;

/// How long the kernel may take to answer a batch.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

thread_local! {
    /// This thread's netlink socket, with the network namespace (inode) it
    /// was opened in.
    static SOCKET: std::cell::RefCell<Option<(u64, Socket)>> = const { std::cell::RefCell::new(None) };
}

/// The inode of the calling thread's network namespace.
fn current_netns() -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// Why a transaction failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The netlink socket failed.
    #[error("nftables netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel refused the batch; nothing of it applies.
    #[error("nftables refused the transaction at {what}: {source}")]
    Refused {
        /// The first refused message.
        what: String,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// No answer came in time.
    #[error("nftables did not answer within {0:?}")]
    Timeout(Duration),
}

/// Hooks a base chain can attach to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Before routing (`prerouting`).
    Prerouting = 0,
    /// Delivered locally (`input`).
    Input = 1,
    /// Routed through (`forward`).
    Forward = 2,
    /// Sent by a local process (`output`).
    Output = 3,
    /// After routing (`postrouting`).
    Postrouting = 4,
}

/// A base chain: one attached to a hook.
#[derive(Clone, Copy, Debug)]
pub struct BaseChain {
    /// `filter` or `nat`.
    pub kind: &'static str,
    /// Where.
    pub hook: Hook,
    /// Order among chains on the hook (dstnat -100, filter 0, srcnat 100).
    pub priority: i32,
}

/// A set or map definition.
#[derive(Clone, Debug)]
pub struct SetSpec<'a> {
    /// Its name.
    pub name: &'a str,
    /// Key length in bytes (concatenated fields padded to four bytes).
    pub key_len: u32,
    /// nftables' key type id, for `nft list` (e.g. a concatenation).
    pub key_type: u32,
    /// A verdict map (`: verdict`) rather than a set.
    pub verdict_map: bool,
    /// A data map: its values' nftables type id and length in bytes.
    pub data: Option<(u32, u32)>,
    /// A set the packet path fills (`flags dynamic,timeout`), whose
    /// elements expire after this many milliseconds.
    pub timeout_ms: Option<u64>,
}

/// What a set element carries besides its key.
enum ElementValue<'a> {
    /// Nothing: a set, or a deletion by key.
    None,
    /// A verdict map's verdict.
    Verdict(&'a Verdict),
    /// A data map's value.
    Data(&'a [u8]),
}

/// One transaction under construction.
pub struct Batch {
    table: String,
    buf: Vec<u8>,
    /// What each message did, by sequence number, for error messages.
    what: Vec<String>,
    last_flags_at: Option<usize>,
}

impl Batch {
    /// A transaction on the `ip` table `table`.
    pub fn new(table: &str) -> Self {
        let mut b = Batch {
            table: table.to_string(),
            buf: Vec::with_capacity(4096),
            what: Vec::new(),
            last_flags_at: None,
        };
        b.message(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            Attrs::new(),
            "begin",
        );
        b
    }

    /// Messages in the batch (begin and end excluded).
    pub fn len(&self) -> usize {
        self.what.len() - 1
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the encoded batch so far.
    pub fn encoded_len(&self) -> usize {
        self.buf.len()
    }

    /// Creates the table if it does not exist.
    pub fn add_table(&mut self) -> &mut Self {
        let mut a = Attrs::new();
        a.string(1, &self.table);
        self.nft(NEWTABLE, NLM_F_CREATE, a, "add table".into())
    }

    /// Deletes the table and all it holds (it must exist: add it first in
    /// the same batch for an idempotent reset).
    pub fn delete_table(&mut self) -> &mut Self {
        let mut a = Attrs::new();
        a.string(1, &self.table);
        self.nft(DELTABLE, 0, a, "delete table".into())
    }

    /// Creates a regular chain, or a base chain with `base`.
    pub fn add_chain(&mut self, name: &str, base: Option<BaseChain>) -> &mut Self {
        let mut a = Attrs::new();
        // NFTA_CHAIN_TABLE 1, NAME 3, HOOK 4 {HOOKNUM 1, PRIORITY 2}, POLICY 5, TYPE 7
        a.string(1, &self.table).string(3, name);
        if let Some(base) = base {
            let hook = a.nest(4);
            a.be32(1, base.hook as u32).be32(2, base.priority as u32);
            a.end(hook);
            a.be32(5, 1).string(7, base.kind);
        }
        self.nft(NEWCHAIN, NLM_F_CREATE, a, format!("add chain {name}"))
    }

    /// Removes every rule of a chain.
    pub fn flush_chain(&mut self, name: &str) -> &mut Self {
        let mut a = Attrs::new();
        a.string(1, &self.table).string(2, name);
        self.nft(DELRULE, 0, a, format!("flush chain {name}"))
    }

    /// Deletes an empty, unreferenced chain.
    pub fn delete_chain(&mut self, name: &str) -> &mut Self {
        let mut a = Attrs::new();
        a.string(1, &self.table).string(3, name);
        self.nft(DELCHAIN, 0, a, format!("delete chain {name}"))
    }

    /// Appends a rule to a chain.
    pub fn add_rule(&mut self, chain: &str, exprs: &[Expr]) -> &mut Self {
        let mut a = Attrs::new();
        // NFTA_RULE_TABLE 1, CHAIN 2, EXPRESSIONS 4
        a.string(1, &self.table).string(2, chain);
        encode_list(&mut a, 4, exprs);
        self.nft(
            NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            a,
            format!("add rule to {chain}"),
        )
    }

    /// Creates a named set or verdict map (a hash: exact keys).
    pub fn add_set(&mut self, spec: &SetSpec<'_>) -> &mut Self {
        const NFT_SET_MAP: u32 = 0x8;
        const NFT_SET_TIMEOUT: u32 = 0x10;
        const NFT_SET_EVAL: u32 = 0x20;
        const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
        let mut flags = if spec.verdict_map || spec.data.is_some() {
            NFT_SET_MAP
        } else {
            0
        };
        if spec.timeout_ms.is_some() {
            flags |= NFT_SET_TIMEOUT | NFT_SET_EVAL;
        }
        let mut a = Attrs::new();
        // NFTA_SET_TABLE 1, NAME 2, FLAGS 3, KEY_TYPE 4, KEY_LEN 5,
        // DATA_TYPE 6, DATA_LEN 7, ID 10, TIMEOUT 11
        a.string(1, &self.table)
            .string(2, spec.name)
            .be32(3, flags)
            .be32(4, spec.key_type)
            .be32(5, spec.key_len);
        if spec.verdict_map {
            a.be32(6, NFT_DATA_VERDICT).be32(7, 0);
        } else if let Some((data_type, data_len)) = spec.data {
            a.be32(6, data_type).be32(7, data_len);
        }
        a.be32(10, self.what.len() as u32);
        if let Some(timeout) = spec.timeout_ms {
            a.be64(11, timeout);
        }
        self.nft(NEWSET, NLM_F_CREATE, a, format!("add set {}", spec.name))
    }

    /// Deletes a set that no rule refers to any more.
    pub fn delete_set(&mut self, name: &str) -> &mut Self {
        let mut a = Attrs::new();
        a.string(1, &self.table).string(2, name);
        self.nft(DELSET, 0, a, format!("delete set {name}"))
    }

    /// Adds elements to a set (`verdict` None) or map. Adding an element
    /// that exists with another value fails: delete it first.
    pub fn add_elements<'k>(
        &mut self,
        set: &str,
        elements: impl IntoIterator<Item = (&'k [u8], Option<&'k Verdict>)>,
    ) -> &mut Self {
        let elements = elements.into_iter().map(|(k, v)| {
            (
                k,
                match v {
                    Some(v) => ElementValue::Verdict(v),
                    None => ElementValue::None,
                },
            )
        });
        self.elements(NEWSETELEM, NLM_F_CREATE, set, elements)
    }

    /// Adds elements with data values to a data map.
    pub fn add_data_elements<'k>(
        &mut self,
        set: &str,
        elements: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
    ) -> &mut Self {
        let elements = elements
            .into_iter()
            .map(|(k, v)| (k, ElementValue::Data(v)));
        self.elements(NEWSETELEM, NLM_F_CREATE, set, elements)
    }

    /// Removes elements (by key) from a set or map.
    pub fn delete_elements<'k>(
        &mut self,
        set: &str,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> &mut Self {
        self.elements(
            DELSETELEM,
            0,
            set,
            keys.into_iter().map(|k| (k, ElementValue::None)),
        )
    }

    fn elements<'k>(
        &mut self,
        kind: u16,
        flags: u16,
        set: &str,
        elements: impl IntoIterator<Item = (&'k [u8], ElementValue<'k>)>,
    ) -> &mut Self {
        // A message is at most 64 KiB of attributes (a u16 length): chunk.
        const PER_MESSAGE: usize = 500;
        let mut elements = elements.into_iter().peekable();
        while elements.peek().is_some() {
            let mut a = Attrs::new();
            // NFTA_SET_ELEM_LIST_TABLE 1, SET 2, ELEMENTS 3
            a.string(1, &self.table).string(2, set);
            let list = a.nest(3);
            for (key, value) in elements.by_ref().take(PER_MESSAGE) {
                let elem = a.nest(1);
                // NFTA_SET_ELEM_KEY 1, DATA 2
                encode_value(&mut a, 1, key);
                match value {
                    ElementValue::None => {}
                    ElementValue::Verdict(v) => {
                        let data = a.nest(2);
                        v.encode_data(&mut a);
                        a.end(data);
                    }
                    ElementValue::Data(bytes) => encode_value(&mut a, 2, bytes),
                }
                a.end(elem);
            }
            a.end(list);
            let what = if kind == NEWSETELEM { "add" } else { "delete" };
            self.nft(kind, flags, a, format!("{what} elements of {set}"));
        }
        self
    }

    fn nft(&mut self, msg: u16, flags: u16, attrs: Attrs, what: String) -> &mut Self {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        self.message(kind, NLM_F_REQUEST | flags, FAMILY_IP, attrs, &what);
        self
    }

    fn message(&mut self, kind: u16, flags: u16, family: u8, attrs: Attrs, what: &str) {
        let payload = attrs.into_bytes();
        let seq = self.what.len() as u32;
        let len = 16 + 4 + payload.len();
        let at = self.buf.len();
        self.buf.extend_from_slice(&(len as u32).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, res_id (the subsystem, big endian,
        // for the batch messages)
        self.buf.push(family);
        self.buf.push(0);
        let res_id = if kind == NFNL_MSG_BATCH_BEGIN || kind == NFNL_MSG_BATCH_END {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(&payload);
        if kind != NFNL_MSG_BATCH_BEGIN && kind != NFNL_MSG_BATCH_END {
            self.last_flags_at = Some(at + 6);
        }
        self.what.push(what.to_string());
    }

    /// Sends the batch and waits for the kernel's verdict on it. Blocking:
    /// call it from a blocking context.
    pub fn commit(mut self) -> Result<(), NftError> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(flags_at) = self.last_flags_at else {
            return Ok(());
        };
        let last_seq = self.what.len() as u32 - 1;
        let flags = u16::from_ne_bytes([self.buf[flags_at], self.buf[flags_at + 1]]) | NLM_F_ACK;
        self.buf[flags_at..flags_at + 2].copy_from_slice(&flags.to_ne_bytes());
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, Attrs::new(), "end");

        // Closing a netfilter netlink socket costs the kernel an RCU grace
        // period (5–10 ms here, more than a small commit), so each thread
        // keeps its socket for its next commit, in the same namespace only.
        let netns = current_netns()?;
        let cached = SOCKET
            .with(|c| c.borrow_mut().take())
            .filter(|(ns, _)| *ns == netns)
            .map(|(_, socket)| socket);
        let mut socket = match cached {
            Some(socket) => socket,
            None => {
                let mut socket = Socket::new(NETLINK_NETFILTER)?;
                socket.bind_auto()?;
                socket.connect(&SocketAddr::new(0, 0))?;
                set_buffer(&socket, nix::sys::socket::sockopt::RcvBufForce, 1 << 20)?;
                set_receive_timeout(&socket, REPLY_TIMEOUT)?;
                socket
            }
        };
        // A large batch must fit the socket's send buffer in one message.
        let size = (self.buf.len() + 65536).min(i32::MAX as usize);
        set_buffer(&socket, nix::sys::socket::sockopt::SndBufForce, size)?;
        let result = self.exchange(&mut socket, last_seq);
        // A socket that answered in full may serve again; after a transport
        // error or a timeout, replies could still be pending on it.
        if matches!(result, Ok(()) | Err(NftError::Refused { .. })) {
            SOCKET.with(|c| *c.borrow_mut() = Some((netns, socket)));
        }
        result
    }

    /// Sends the batch on `socket` and reads replies up to the ack of
    /// `last_seq`.
    fn exchange(&self, socket: &mut Socket, last_seq: u32) -> Result<(), NftError> {
        socket.send(&self.buf, 0)?;
        let mut first_error: Option<NftError> = None;
        let mut reply = Vec::with_capacity(65536);
        loop {
            reply.clear();
            match socket.recv(&mut reply, 0) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(first_error.unwrap_or(NftError::Timeout(REPLY_TIMEOUT)));
                }
                Err(e) => return Err(e.into()),
            }
            let mut at = 0;
            while at + 16 <= reply.len() {
                let len =
                    u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([reply[at + 4], reply[at + 5]]);
                let seq = u32::from_ne_bytes(reply[at + 8..at + 12].try_into().unwrap_or_default());
                if len < 16 || at + len > reply.len() {
                    break;
                }
                if kind == NLMSG_ERROR && len >= 20 {
                    let code =
                        i32::from_ne_bytes(reply[at + 16..at + 20].try_into().unwrap_or_default());
                    if code != 0 && first_error.is_none() {
                        first_error = Some(NftError::Refused {
                            what: self
                                .what
                                .get(seq as usize)
                                .cloned()
                                .unwrap_or_else(|| format!("message {seq}")),
                            source: io::Error::from_raw_os_error(-code),
                        });
                    }
                    if seq == last_seq {
                        return first_error.map_or(Ok(()), Err);
                    }
                }
                at += (len + 3) & !3;
            }
        }
    }
}

fn set_buffer<O>(socket: &Socket, option: O, size: usize) -> io::Result<()>
where
    O: nix::sys::socket::SetSockOpt<Val = usize>,
{
    nix::sys::socket::setsockopt(socket, option, &size).map_err(io::Error::from)
}

/// Bounds how long a netlink `recv` waits for the kernel.
pub(crate) fn set_receive_timeout(socket: &Socket, timeout: Duration) -> io::Result<()> {
    let tv = nix::sys::time::TimeVal::new(
        timeout.as_secs() as nix::libc::time_t,
        timeout.subsec_micros() as nix::libc::suseconds_t,
    );
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(io::Error::from)
}

/// Whether the error means the table is not there.
pub fn is_missing(err: &NftError) -> bool {
    matches!(err, NftError::Refused { source, .. } if source.raw_os_error() == Some(nix::libc::ENOENT))
}
