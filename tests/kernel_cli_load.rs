//! `opsplit load` / `opsplit unload` against the running kernel: dry runs, verifier rejections
//! with source lines, foreground links released however the process ends, the pin layout and
//! unload, and `--replace` of links and of persistent attachments, including failed replaces
//! that must leave the old program attached.

mod common;
#[path = "kernel_harness/mod.rs"]
mod kernel_harness;

use std::io::{BufRead, BufReader};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fixtures_dir, kernel_test_gate};
use kernel_harness::{Cgroup, Netns, PinDir, Session, opsplit_bin, workload};
use opsplit::load::kernel;

fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn opsplit(args: &[&str]) -> Output {
    Command::new(opsplit_bin())
        .args(args)
        .output()
        .expect("run opsplit")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A foreground `opsplit load` whose `attached:` line has been seen. Killed on drop if still
/// running.
struct Foreground {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    seen: String,
}

impl Foreground {
    fn start(file: &Path, cg: &Cgroup, extra: &[&str]) -> Foreground {
        let mut child = Command::new(opsplit_bin())
            .args(["load", p(file), "--cgroup", p(&cg.path)])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn opsplit load");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("read opsplit output");
            seen.push_str(&line);
            assert!(n > 0, "opsplit load ended before attaching:\n{seen}");
            if line.starts_with("attached:") {
                break;
            }
        }
        Foreground { child, out, seen }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for exit; returns the exit status and the whole stdout.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).expect("read rest");
        let status = self.child.wait().expect("wait opsplit");
        (status, format!("{}{rest}", self.seen))
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prog_ids_of(out: &str) -> Vec<(String, u32)> {
    out.lines()
        .filter(|l| l.contains(" verified "))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap().to_string();
            let id = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("id="))
                .expect("id= on program line")
                .parse()
                .unwrap();
            (name, id)
        })
        .collect()
}

#[test]
fn dry_run_verifies_every_fixture_and_releases_it() {
    if !kernel_test_gate("dry_run_verifies_every_fixture_and_releases_it") {
        return;
    }
    let _s = Session::start();
    let mut n = 0;
    for e in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "o") {
            continue;
        }
        let o = opsplit(&["load", "--dry-run", p(&path)]);
        let t = text(&o);
        assert!(o.status.success(), "{}: {t}", path.display());
        let obj = opsplit::obj::Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let progs = prog_ids_of(&t);
        assert_eq!(progs.len(), obj.programs.len(), "{t}");
        for line in t.lines().filter(|l| l.contains(" verified ")) {
            let vi: u32 = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("verified_insns="))
                .unwrap()
                .parse()
                .unwrap();
            assert!(vi > 0, "{line}");
        }
        // Released: the kernel forgets the program ids. Programs held by a PROG_ARRAY are let go
        // by the kernel's deferred clearing of that map, so allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, id) in progs {
            while kernel::prog_fd_by_id(id).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                kernel::prog_fd_by_id(id).is_err(),
                "{name} (id {id}) still loaded after --dry-run"
            );
        }
        n += 1;
    }
    assert!(n >= 18);
}

/// tcp_iw.o with every `r0 = 0|1` of its program turned into `r0 = 7`: the verifier refuses the
/// return value at the program's exit.
fn rejected_object() -> (Vec<u8>, String, usize) {
    use opsplit::insn::{AluOp, Insn, Reg, Src};
    let bytes = std::fs::read(fixture("tcp_iw.o")).unwrap();
    let mut obj = opsplit::obj::Object::parse(&bytes).unwrap();
    let fid = obj.programs[0].function;
    let name = obj.functions[fid].name.clone();
    let mut changed = 0;
    for si in &mut obj.functions[fid].insns {
        if let Insn::Alu {
            op: AluOp::Mov,
            dst,
            src: Src::Imm(imm @ (0 | 1)),
            ..
        } = &mut si.insn
            && *dst == Reg::R0
        {
            *imm = 7;
            changed += 1;
        }
    }
    assert!(changed > 0, "tcp_iw.o has a constant return");
    let slots = obj.functions[fid].slot_count();
    (obj.write().unwrap(), name, slots)
}

#[test]
fn rejection_names_program_instruction_and_source_line() {
    if !kernel_test_gate("rejection_names_program_instruction_and_source_line") {
        return;
    }
    let _s = Session::start();
    let (bytes, prog, slots) = rejected_object();
    let dir = std::env::temp_dir().join(kernel_harness::unique("rejected"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tcp_iw_bad.o");
    std::fs::write(&file, &bytes).unwrap();
    let o = opsplit(&["load", "--dry-run", p(&file)]);
    let t = text(&o);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("REJECTED"), "{t}");
    assert!(t.contains(&format!("program {prog}: rejected")), "{t}");
    let insn: usize = t
        .split("at instruction ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no instruction in:\n{t}"));
    assert!(
        insn < slots,
        "instruction {insn} outside {prog} ({slots} slots)"
    );
    // The source line is the one BTF line info gives for that instruction.
    let obj = opsplit::obj::Object::parse(&bytes).unwrap();
    let fid = obj.programs[0].function;
    let want = obj
        .function_lines(fid)
        .into_iter()
        .take_while(|l| l.slot <= insn)
        .last()
        .expect("line info");
    assert!(
        t.contains(&format!("source: {}:{}:", want.file, want.line)),
        "expected {}:{} in:\n{t}",
        want.file,
        want.line
    );
    assert!(t.contains("R0"), "verifier log tail missing:\n{t}");
    // The exit is reached by the ops the program handles (the op analysis names them).
    let ops = t
        .lines()
        .find_map(|l| l.trim().strip_prefix("ops: "))
        .unwrap_or_else(|| panic!("no ops line in:\n{t}"));
    assert!(ops.contains("TCP_LISTEN_CB"), "{ops}");
}

#[test]
fn foreground_links_run_in_name_order_and_sigterm_prints_stats_and_detaches() {
    if !kernel_test_gate("foreground_links_run_in_name_order_and_sigterm_prints_stats_and_detaches")
    {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("fg");
    let ns = Netns::new("fg");
    let fg = Foreground::start(&fixture("multi_prog.o"), &cg, &[]);
    let progs = prog_ids_of(&fg.seen);
    let mut by_name = progs.clone();
    by_name.sort();
    let want: Vec<u32> = by_name.iter().map(|(_, id)| *id).collect();
    assert_eq!(cg.attached(), want, "attached in program-name order");
    workload::run(&cg, &ns, Duration::from_secs(10)).expect("workload");
    fg.signal(libc::SIGTERM);
    let (status, out) = fg.finish();
    assert!(status.success(), "{out}");
    assert!(out.contains("stopping (SIGTERM)"), "{out}");
    for (name, _) in &by_name {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(name.as_str()) && l.contains("runs="))
            .unwrap_or_else(|| panic!("no stats for {name}:\n{out}"));
        let runs: u64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("runs="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(runs > 0, "{line}");
        let avg: f64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("avg_ns="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(avg > 0.0, "{line}");
    }
    assert_eq!(cg.wait_empty(Duration::from_secs(5)), Vec::<u32>::new());
}

#[test]
fn sigkill_releases_the_links() {
    if !kernel_test_gate("sigkill_releases_the_links") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("kill");
    let fg = Foreground::start(&fixture("rtt_stats.o"), &cg, &[]);
    assert_eq!(cg.attached().len(), 1);
    fg.signal(libc::SIGKILL);
    let (status, _) = fg.finish();
    assert!(!status.success());
    assert_eq!(
        cg.wait_empty(Duration::from_secs(5)),
        Vec::<u32>::new(),
        "links must die with the process"
    );
}

#[test]
fn duration_ends_a_foreground_run() {
    if !kernel_test_gate("duration_ends_a_foreground_run") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("dur");
    let start = Instant::now();
    let fg = Foreground::start(&fixture("tcp_iw.o"), &cg, &["--duration", "0.5"]);
    let (status, out) = fg.finish();
    assert!(status.success(), "{out}");
    assert!(out.contains("duration elapsed"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(cg.attached().is_empty());
}

#[test]
fn pin_layout_survives_the_process_and_unload_removes_exactly_it() {
    if !kernel_test_gate("pin_layout_survives_the_process_and_unload_removes_exactly_it") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("pin");
    let dir = PinDir::new("pin");
    let o = opsplit(&[
        "load",
        p(&fixture("tail_call.o")),
        "--cgroup",
        p(&cg.path),
        "--pin",
        p(&dir.path),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // Only the dispatcher is attached; the tail-call targets run through the PROG_ARRAY.
    let progs = prog_ids_of(&t);
    let dispatch = progs.iter().find(|(n, _)| n == "dispatch").unwrap().1;
    assert_eq!(cg.attached(), vec![dispatch]);
    for (name, _) in &progs {
        assert!(dir.path.join("progs").join(name).exists(), "progs/{name}");
    }
    assert!(dir.path.join("links/dispatch").exists());
    assert!(!dir.path.join("links/handle_state").exists());
    // The PROG_ARRAY stays pinned with its slots filled: the kernel has not cleared it.
    let jt = libbpf_rs::MapHandle::from_pinned_path(dir.path.join("maps/op_handlers"))
        .expect("PROG_ARRAY pinned");
    use libbpf_rs::MapCore;
    assert!(jt.keys().count() > 0, "PROG_ARRAY lost its programs");
    // Global data maps are pinned with `_` for `.`.
    assert!(
        std::fs::read_dir(dir.path.join("maps"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with("_rodata"))
    );
    // unload refuses what is not opsplit's.
    let foreign = PinDir::new("foreign");
    std::fs::create_dir(&foreign.path).unwrap();
    jt_pin(&foreign.path.join("someone_elses"));
    let o = opsplit(&["unload", p(&foreign.path)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("does not look like an opsplit pin directory"));
    assert!(foreign.path.join("someone_elses").exists());
    // unload removes all of it.
    let o = opsplit(&["unload", p(&dir.path)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(cg.attached().is_empty());
    assert!(!dir.path.exists(), "pin dir left behind");
}

#[test]
fn pin_refuses_unusable_directories_and_leaves_nothing_attached() {
    if !kernel_test_gate("pin_refuses_unusable_directories_and_leaves_nothing_attached") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("pinbad");
    // Not on bpffs.
    let tmp = std::env::temp_dir().join(kernel_harness::unique("notbpffs"));
    let o = opsplit(&[
        "load",
        p(&fixture("tcp_iw.o")),
        "--cgroup",
        p(&cg.path),
        "--pin",
        p(&tmp),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not on a bpf filesystem"), "{}", text(&o));
    assert!(!tmp.exists());
    // Not empty.
    let dir = PinDir::new("notempty");
    std::fs::create_dir(&dir.path).unwrap();
    jt_pin(&dir.path.join("someone_elses"));
    let o = opsplit(&[
        "load",
        p(&fixture("tcp_iw.o")),
        "--cgroup",
        p(&cg.path),
        "--pin",
        p(&dir.path),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));
    assert!(cg.attached().is_empty());
    let names: Vec<_> = std::fs::read_dir(&dir.path)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("someone_elses")]);
}

/// Pins some BPF object that is not opsplit's (a fresh array map).
fn jt_pin(path: &Path) {
    let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
        ..Default::default()
    };
    let mut m =
        libbpf_rs::MapHandle::create(libbpf_rs::MapType::Array, Some("foreign"), 4, 4, 1, &opts)
            .unwrap();
    m.pin(path).unwrap();
}

#[test]
fn replace_swaps_a_pinned_link_and_a_failed_replace_changes_nothing() {
    if !kernel_test_gate("replace_swaps_a_pinned_link_and_a_failed_replace_changes_nothing") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("rlink");
    let dir = PinDir::new("rlink");
    let o = opsplit(&[
        "load",
        p(&fixture("rtt_stats.o")),
        "--cgroup",
        p(&cg.path),
        "--pin",
        p(&dir.path),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let old = cg.attached();
    assert_eq!(old.len(), 1);
    let link = dir.path.join("links/rtt_stats");

    // A candidate the verifier refuses: nothing changes.
    let (bad, _, _) = rejected_object();
    let tmp = std::env::temp_dir().join(kernel_harness::unique("bad"));
    std::fs::create_dir_all(&tmp).unwrap();
    let bad_file = tmp.join("bad.o");
    std::fs::write(&bad_file, &bad).unwrap();
    let o = opsplit(&[
        "load",
        p(&bad_file),
        "--cgroup",
        p(&cg.path),
        "--replace-pinned",
        p(&link),
    ]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert_eq!(cg.attached(), old, "old program must stay attached");

    // Several sock_ops programs: refused with the reason, nothing changes.
    let o = opsplit(&[
        "load",
        p(&fixture("multi_prog.o")),
        "--cgroup",
        p(&cg.path),
        "--replace-pinned",
        p(&link),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("cannot be swapped in one step"),
        "{}",
        text(&o)
    );
    assert_eq!(cg.attached(), old);

    // A good candidate: the link now runs it, in the same place.
    let o = opsplit(&[
        "load",
        p(&fixture("tcp_iw.o")),
        "--cgroup",
        p(&cg.path),
        "--replace-pinned",
        p(&link),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    let new_id = prog_ids_of(&t)[0].1;
    assert_eq!(cg.attached(), vec![new_id]);
    assert!(t.contains("bpf_link"), "{t}");

    // Replacing by id works through the same link.
    let o = opsplit(&[
        "load",
        p(&fixture("tos_reflect.o")),
        "--cgroup",
        p(&cg.path),
        "--replace",
        &new_id.to_string(),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert_eq!(cg.attached(), vec![prog_ids_of(&t)[0].1]);

    let o = opsplit(&["unload", p(&dir.path)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(cg.attached().is_empty());
}

#[test]
fn replace_of_a_persistent_attachment_says_so_and_unload_detaches_it() {
    if !kernel_test_gate("replace_of_a_persistent_attachment_says_so_and_unload_detaches_it") {
        return;
    }
    let _s = Session::start();
    let cg = Cgroup::new("rattach");
    // The "running" program, attached the old way (BPF_PROG_ATTACH, ALLOW_MULTI), as a legacy
    // deployment would have it. The Cgroup guard detaches whatever is left.
    let bytes = std::fs::read(fixture("rtt_stats.o")).unwrap();
    let old = opsplit::load::Loaded::load(&bytes, "rtt_stats.o").unwrap();
    let old_prog = old.program("rtt_stats").unwrap();
    kernel::prog_attach_multi(old_prog.as_fd(), cg.fd().as_fd()).unwrap();
    let old_id = old.report.programs[0].id;
    assert_eq!(cg.attached(), vec![old_id]);

    // A failed replace (verifier) leaves it attached.
    let (bad, _, _) = rejected_object();
    let tmp = std::env::temp_dir().join(kernel_harness::unique("bad"));
    std::fs::create_dir_all(&tmp).unwrap();
    let bad_file = tmp.join("bad.o");
    std::fs::write(&bad_file, &bad).unwrap();
    let o = opsplit(&[
        "load",
        p(&bad_file),
        "--cgroup",
        p(&cg.path),
        "--replace",
        &old_id.to_string(),
    ]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(cg.attached(), vec![old_id]);

    // A replace naming a program that is not attached there changes nothing either.
    let o = opsplit(&[
        "load",
        p(&fixture("tcp_iw.o")),
        "--cgroup",
        p(&cg.path),
        "--replace",
        "4294967",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(cg.attached(), vec![old_id]);

    let dir = PinDir::new("rattach");
    let o = opsplit(&[
        "load",
        p(&fixture("tcp_iw.o")),
        "--cgroup",
        p(&cg.path),
        "--replace",
        &old_id.to_string(),
        "--pin",
        p(&dir.path),
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("persistent attachment"), "{t}");
    let new_id = prog_ids_of(&t)[0].1;
    // Swapped in place, and still attached after opsplit exited.
    assert_eq!(cg.attached(), vec![new_id]);
    drop(old);
    let o = opsplit(&["unload", p(&dir.path)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(cg.attached().is_empty());
    assert!(!dir.path.exists());
}
