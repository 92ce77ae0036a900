# The job Sidekiq runs in booster-bench's `peers` scenario, as in Sidekiq's
# own bin/sidekiqload (LoadWorker), plus what makes the timing count
# finished jobs: each job, once done, increments the Redis counter
# `bench:done` (the harness stops the clock when it reaches N). With
# spin_us > 0 the job first keeps its thread busy for that long (CPU work).
# Loaded with `sidekiq -r`. Redis is found through REDIS_URL, set by the
# harness to a loopback port.
require "sidekiq"

Sidekiq.configure_server do |config|
  config.logger.level = Logger::ERROR
end

class LoadWorker
  include Sidekiq::Worker
  sidekiq_options retry: 1

  def perform(idx, spin_us = 0)
    if spin_us > 0
      clock = Process::CLOCK_MONOTONIC
      until_s = Process.clock_gettime(clock) + spin_us / 1_000_000.0
      nil while Process.clock_gettime(clock) < until_s
    end
    Sidekiq.redis { |c| c.incr("bench:done") }
  end
end
