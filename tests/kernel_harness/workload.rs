//! The TCP workload every kernel test runs: fixed addresses and ports on loopback inside a private
//! network namespace, IPv4 and IPv6, single-threaded and lock-step so that two runs produce the
//! same callbacks in the same order.
//!
//! Per family:
//! 1. a listener; three connections from fixed client ports, 2×1000 bytes up, 1000 bytes down,
//!    orderly close (client first);
//! 2. one connection reset by the client (SO_LINGER 0);
//! 3. a connect to a port without listener (refused by RST);
//! 4. a second listener whose inbound data segments are dropped by nftables in the input hook
//!    (the first two of them: the original transmission and the tail-loss probe), so the
//!    retransmission timer fires (RTO_CB) and the segment is retransmitted (RETRANS_CB) before
//!    it gets through.
//!
//! The child joins the cgroup before it creates any socket, then enters the namespace.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::time::{Duration, Instant};

use super::{Cgroup, Netns};

struct Family {
    addr: IpAddr,
    server: u16,
    lossy: u16,
    refused: u16,
    client_base: u16,
}

const FAMILIES: [Family; 2] = [
    Family {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        server: 7101,
        lossy: 7102,
        refused: 7109,
        client_base: 41001,
    },
    Family {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        server: 7201,
        lossy: 7202,
        refused: 7209,
        client_base: 42001,
    },
];

/// Segments toward the lossy ports that carry data (longer than 500 bytes on the wire) are
/// dropped until 2500 bytes have been dropped: the 1000-byte segment and its first retransmission
/// (the loss probe), per port. They are dropped on the way *in*: a drop in the output hook is
/// reported to TCP as a transmit error (-EPERM), which keeps the segment unsent and retries it
/// from the probe timer, so neither RTO_CB nor RETRANS_CB would fire. Dropped on input, the
/// segment was sent and is lost, as on a real network.
pub fn nft_rules() -> String {
    let mut s = String::from(
        "table inet opsplit_loss {\n  chain in {\n    type filter hook input priority 0; policy accept;\n",
    );
    for f in &FAMILIES {
        s.push_str(&format!(
            "    tcp dport {} meta length > 500 quota until 2500 bytes drop\n",
            f.lossy
        ));
    }
    s.push_str("  }\n}\n");
    s
}

const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn connect_from(local: SocketAddr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let domain = if local.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket syscalls on an fd owned by the TcpStream from here on.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: valid fd and option buffer.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            4,
        );
    }
    let (sa, len) = sockaddr(local);
    // SAFETY: `sa` holds a sockaddr of `len` bytes.
    if unsafe { libc::bind(fd, (&raw const sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (sa, len) = sockaddr(remote);
    // SAFETY: as above.
    if unsafe { libc::connect(fd, (&raw const sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

fn sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            (ss, std::mem::size_of::<libc::sockaddr_in>() as u32)
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as u16,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            (ss, std::mem::size_of::<libc::sockaddr_in6>() as u32)
        }
    }
}

fn accept(l: &TcpListener) -> std::io::Result<TcpStream> {
    let (s, _) = l.accept()?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn ctx<T>(what: &str, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn read_to_eof(s: &mut TcpStream) -> std::io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(n),
            k => n += k,
        }
    }
}

fn family_steps(f: &Family) -> Result<(), String> {
    let server = SocketAddr::new(f.addr, f.server);
    let l = ctx("listen", TcpListener::bind(server))?;
    for i in 0..3u16 {
        let mut c = ctx(
            "connect",
            connect_from(SocketAddr::new(f.addr, f.client_base + i), server),
        )?;
        let mut s = ctx("accept", accept(&l))?;
        let up = [b'a' + i as u8; 1000];
        ctx("send", c.write_all(&up))?;
        ctx("send", c.write_all(&up))?;
        let mut got = [0u8; 2000];
        ctx("server read", s.read_exact(&mut got))?;
        ctx("reply", s.write_all(&[b'z'; 1000]))?;
        let mut back = [0u8; 1000];
        ctx("client read", c.read_exact(&mut back))?;
        drop(c);
        ctx("server read to EOF", read_to_eof(&mut s))?;
        drop(s);
    }
    // Reset: SO_LINGER with a zero timeout turns close() into an RST.
    let mut c = ctx(
        "connect (rst)",
        connect_from(SocketAddr::new(f.addr, f.client_base + 3), server),
    )?;
    let mut s = ctx("accept (rst)", accept(&l))?;
    ctx("send (rst)", c.write_all(&[b'r'; 100]))?;
    let mut got = [0u8; 100];
    ctx("server read (rst)", s.read_exact(&mut got))?;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and option buffer.
    unsafe {
        libc::setsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        );
    }
    drop(c);
    match s.read(&mut got) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => return Err(format!("expected a reset, got {other:?}")),
    }
    drop(s);
    drop(l);
    // Refused.
    match connect_from(
        SocketAddr::new(f.addr, f.client_base + 4),
        SocketAddr::new(f.addr, f.refused),
    ) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        other => return Err(format!("expected a refused connect, got {other:?}")),
    }
    // Loss: the server's first two data segments are dropped on the way in.
    let lossy = SocketAddr::new(f.addr, f.lossy);
    let l = ctx("listen (lossy)", TcpListener::bind(lossy))?;
    let mut c = ctx(
        "connect (lossy)",
        connect_from(SocketAddr::new(f.addr, f.client_base + 5), lossy),
    )?;
    let mut s = ctx("accept (lossy)", accept(&l))?;
    ctx("send (lossy)", c.write_all(&[b'l'; 1000]))?;
    let mut got = [0u8; 1000];
    ctx("server read (lossy)", s.read_exact(&mut got))?;
    ctx("reply (lossy)", s.write_all(&[b'y'; 1000]))?;
    ctx("client read (lossy)", c.read_exact(&mut got))?;
    drop(c);
    ctx("server read to EOF (lossy)", read_to_eof(&mut s))?;
    drop(s);
    drop(l);
    Ok(())
}

/// Runs in the forked child: only syscalls, std networking and plain allocation (glibc makes
/// malloc usable after fork); never touches the parent's stdout/stderr locks.
fn child_main(procs: &std::ffi::CStr, netns_fd: i32) -> Result<(), String> {
    // SAFETY: writing "0" to cgroup.procs moves the calling process into that cgroup.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
            return Err(format!("join cgroup: {}", std::io::Error::last_os_error()));
        }
        libc::close(fd);
        if libc::setns(netns_fd, libc::CLONE_NEWNET) != 0 {
            return Err(format!("setns: {}", std::io::Error::last_os_error()));
        }
    }
    for f in &FAMILIES {
        family_steps(f).map_err(|e| format!("{}: {e}", f.addr))?;
    }
    Ok(())
}

/// Runs the workload in a forked child inside `cgroup` and `netns`; kills it after `budget`.
pub fn run(cgroup: &Cgroup, netns: &Netns, budget: Duration) -> Result<Duration, String> {
    let procs = std::ffi::CString::new(
        cgroup
            .path
            .join("cgroup.procs")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .expect("no NUL in path");
    let ns = std::fs::File::open(netns.path()).map_err(|e| format!("open netns: {e}"))?;
    let mut pipe = [0i32; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err("pipe2 failed".into());
    }
    let start = Instant::now();
    // SAFETY: the child only runs `child_main` and `_exit`s; see its documentation.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: in the child; closing our copy of the read end.
        unsafe { libc::close(pipe[0]) };
        let code = match child_main(&procs, ns.as_raw_fd()) {
            Ok(()) => 0,
            Err(msg) => {
                // SAFETY: writing to our pipe end.
                unsafe { libc::write(pipe[1], msg.as_ptr().cast(), msg.len()) };
                1
            }
        };
        // SAFETY: leaving the child without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) };
    }
    // SAFETY: the parent's copy of the write end.
    unsafe { libc::close(pipe[1]) };
    // SAFETY: the read end is ours.
    let mut reader = unsafe { std::fs::File::from_raw_fd(pipe[0]) };
    let mut status = 0;
    let deadline = start + budget;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("workload exceeded its budget of {budget:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    let mut msg = String::new();
    let _ = reader.read_to_string(&mut msg);
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(elapsed)
    } else {
        Err(format!("workload failed (status {status:#x}): {msg}"))
    }
}
