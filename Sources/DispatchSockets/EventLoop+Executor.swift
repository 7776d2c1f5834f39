/// Tasks that prefer the loop (`Task(executorPreference: loop)`) run their jobs on its thread,
/// between its events: background work that already lives on the loop (the probes' timetable
/// and the connects it starts) wakes and runs there without a hop through the shared pool.
extension EventLoop: TaskExecutor {
    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        execute { [self] in job.runSynchronously(on: asUnownedTaskExecutor()) }
    }
}
