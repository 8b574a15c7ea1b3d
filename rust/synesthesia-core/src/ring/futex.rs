//! Blocking wait/wake on a 32-bit word in shared memory. On Linux this is a process-shared
//! futex (no `FUTEX_PRIVATE_FLAG`: the waiters live in other processes mapping the same file).

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleep while `*word == expected`, at most `timeout`. Returns on a wake, a timeout, a signal
/// or a changed word alike: callers re-check their own condition.
#[cfg(target_os = "linux")]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, 4-byte aligned atomic; the kernel only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wake every process waiting on `word`.
#[cfg(target_os = "linux")]
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: as in `wait`; FUTEX_WAKE does not dereference the timeout argument.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

// Elsewhere there is no process-shared futex in std; a short sleep keeps the crate building and
// correct (every caller re-checks), but the latency targets only hold on Linux.
#[cfg(not(target_os = "linux"))]
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    use std::sync::atomic::Ordering;
    if word.load(Ordering::SeqCst) == expected {
        std::thread::sleep(timeout.unwrap_or(Duration::from_millis(1)).min(Duration::from_micros(200)));
    }
}

#[cfg(not(target_os = "linux"))]
pub fn wake_all(_word: &AtomicU32) {}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock every timestamp in a slot header uses, the same
/// one as Python's `time.monotonic_ns()` on Linux, so stages can compare stamps across processes.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Whether process `pid` exists (a zombie counts as existing until reaped). Used to tell a dead
/// writer's stale claim from a live one.
pub fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
