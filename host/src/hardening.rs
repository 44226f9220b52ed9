//! Keeps the keys in this process's memory from other processes of the same user: no core
//! dump (which would write the heap, keys included, to disk) and no ptrace or /proc/PID/mem
//! by the same user (a non-dumpable process can be inspected only with CAP_SYS_PTRACE).

/// Marks the process not dumpable (`prctl(PR_SET_DUMPABLE, 0)`) and returns what the kernel
/// reports back (`PR_GET_DUMPABLE`: 0 when it took).
pub(crate) fn not_dumpable() -> std::io::Result<i32> {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: PR_GET_DUMPABLE takes no argument.
    Ok(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_reports_the_process_not_dumpable() {
        assert_eq!(super::not_dumpable().unwrap(), 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }, 0);
    }
}
