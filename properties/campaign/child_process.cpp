#include "properties/campaign/child_process.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace attncheck {

PipedChild spawn_piped(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    int to_child[2], from_child[2];
    if (pipe(to_child) != 0) throw std::runtime_error("pipe() failed");
    if (pipe(from_child) != 0) {
        close(to_child[0]);
        close(to_child[1]);
        throw std::runtime_error("pipe() failed");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], STDOUT_FILENO);
    for (int fd : {to_child[0], to_child[1], from_child[0], from_child[1]}) posix_spawn_file_actions_addclose(&fa, fd);
    std::vector<std::string> args = argv, envs = env;
    std::vector<char*> av, ev;
    for (auto& a : args) av.push_back(a.data());
    av.push_back(nullptr);
    for (auto& e : envs) ev.push_back(e.data());
    ev.push_back(nullptr);
    PipedChild c;
    const int err = posix_spawn(&c.pid, av[0], &fa, nullptr, av.data(), env.empty() ? environ : ev.data());
    posix_spawn_file_actions_destroy(&fa);
    close(to_child[0]);
    close(from_child[1]);
    if (err != 0) {
        close(to_child[1]);
        close(from_child[0]);
        throw std::runtime_error(std::string("cannot start ") + argv[0] + ": " + std::strerror(err));
    }
    c.in = to_child[1];
    c.out = from_child[0];
    return c;
}

pid_t spawn_logged(const std::vector<std::string>& argv, const std::vector<std::string>& extra_env,
                   const std::string& log) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string v = *e;
        const std::string name = v.substr(0, v.find('='));
        bool replaced = false;
        for (const auto& x : extra_env) replaced = replaced || x.substr(0, x.find('=')) == name;
        if (!replaced) env.push_back(v);
    }
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    std::vector<std::string> args = argv;
    std::vector<char*> av, ev;
    for (auto& a : args) av.push_back(a.data());
    av.push_back(nullptr);
    for (auto& e : env) ev.push_back(e.data());
    ev.push_back(nullptr);
    pid_t pid = -1;
    const int err = posix_spawn(&pid, av[0], &fa, nullptr, av.data(), ev.data());
    posix_spawn_file_actions_destroy(&fa);
    if (err != 0) throw std::runtime_error(std::string("cannot start ") + argv[0] + ": " + std::strerror(err));
    return pid;
}

int wait_child(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) throw std::runtime_error("waitpid failed: " + std::string(std::strerror(errno)));
    return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

void write_all(int fd, const std::string& bytes, const char* what) {
    size_t off = 0;
    while (off < bytes.size()) {
        const ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error(std::string("cannot write to ") + what + " (did it exit?)");
        off += static_cast<size_t>(n);
    }
}

void read_exact(int fd, char* buf, std::size_t n, const char* what) {
    std::size_t got = 0;
    while (got < n) {
        const ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            throw std::runtime_error(std::string(what) + " closed its output (did it exit? its stderr says more)");
        got += static_cast<std::size_t>(r);
    }
}

} // namespace attncheck
