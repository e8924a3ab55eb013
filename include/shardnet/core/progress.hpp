// A progress hook for communication that overlaps computation. MPI advances a non-blocking
// collective only while the process is inside an MPI call, so a transfer started before a long
// GEMM would otherwise sit still until its wait(). Long computations call make_progress()
// between blocks of work; whoever has transfers in flight installs, for a scope, what that
// does (typically MPI_Test on its requests). Kernels stay free of any communication type.
#pragma once

namespace shardnet::detail {

struct progress_hook {
    void (*poll)(void*) = nullptr;
    void* context = nullptr;
};

/// Per thread: a hook installed by one thread's training step never runs on another thread.
inline thread_local progress_hook current_progress_hook;

/// Runs the installed hook, if any. Cheap when none is installed: one thread-local load.
inline void make_progress() {
    const progress_hook& hook = current_progress_hook;
    if (hook.poll) hook.poll(hook.context);
}

/// Installs `poll(context)` as this thread's hook until destroyed (then restores the previous
/// one, so scopes nest).
class progress_scope {
  public:
    template <class Poll>
    explicit progress_scope(Poll& poll) : previous_(current_progress_hook) {
        current_progress_hook = {[](void* p) { (*static_cast<Poll*>(p))(); }, &poll};
    }
    ~progress_scope() { current_progress_hook = previous_; }
    progress_scope(const progress_scope&) = delete;
    progress_scope& operator=(const progress_scope&) = delete;

  private:
    progress_hook previous_;
};

}  // namespace shardnet::detail
