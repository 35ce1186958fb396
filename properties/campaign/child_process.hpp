// Child processes: one whose stdin and stdout are pipes to this one (its
// stderr is ours), for the worker processes of CPU runs and the external
// adapters; and one whose output goes to a log file, for a campaign's rounds
// and fuzzers.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace attncheck {

struct PipedChild {
    pid_t pid = -1;
    int in = -1, out = -1; // our ends: its stdin (we write), its stdout (we read)
};

// argv[0] is the program's path; env: "NAME=value" entries, replacing ours
// (empty: inherit ours). Throws std::runtime_error saying why it did not start.
PipedChild spawn_piped(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// argv[0] is the program's path; `extra_env` ("NAME=value") is added to our
// environment (replacing a variable of the same name); stdout and stderr go
// to `log` (truncated). Throws std::runtime_error when it did not start.
pid_t spawn_logged(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                   const std::string& log);
// Waits for the child: its exit status, or -signal when a signal ended it.
int wait_child(pid_t pid);

// Whole writes and reads on a pipe (EINTR retried). write_all throws when the
// reader is gone (SIGPIPE must be ignored for that to be an error, not a
// death); read_exact throws when the writer closed before n bytes came.
void write_all(int fd, const std::string& bytes, const char* what);
void read_exact(int fd, char* buf, std::size_t n, const char* what);

} // namespace attncheck
