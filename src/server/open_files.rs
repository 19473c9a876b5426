//! The process's open-file limit: every connection holds a file descriptor.
//!
//! A process usually starts with a soft limit of 1,024 descriptors (most shells, and systemd
//! for services) under a much higher hard limit (systemd: 524,288; Docker: 1,048,576), so a node
//! would refuse its 1,025th WebSocket with `EMFILE` long before memory or CPU ran short. Like Go's
//! runtime and most network servers, the binary raises the soft limit to the hard one when it
//! starts: it costs nothing until descriptors are used, and an operator who wants a lower ceiling
//! lowers the hard limit (`LimitNOFILE=`, `ulimit -Hn`, `docker run --ulimit nofile=…`).

use rustix::process::{Resource, getrlimit, setrlimit};

/// Raises the soft open-file limit to the hard one, and logs the limit in force.
pub(super) fn raise_open_file_limit() {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        tracing::info!(limit = ?limit.current, "open-file limit");
        return;
    }
    let before = limit.current;
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            limit = ?limit.maximum,
            raised_from = ?before,
            "open-file limit raised to the hard limit"
        ),
        Err(error) => tracing::warn!(
            %error,
            limit = ?before,
            hard_limit = ?limit.maximum,
            "cannot raise the open-file limit; each connection needs a descriptor"
        ),
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let limit = getrlimit(Resource::Nofile);
        let Some(hard) = limit.maximum else {
            return; // unlimited: nothing to raise to
        };
        // One below the hard limit: lowering a soft limit needs no privilege, and one descriptor
        // less cannot starve the other tests of this process.
        let lowered = Rlimit {
            current: Some(hard - 1),
            maximum: Some(hard),
        };
        setrlimit(Resource::Nofile, lowered).expect("the soft limit can be lowered");
        super::raise_open_file_limit();
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    }
}
