# The no-op job Sidekiq drains in booster-bench's `peers` scenario, as in
# Sidekiq's own bin/sidekiqload (LoadWorker). Loaded with `sidekiq -r`.
# Redis is found through REDIS_URL, set by the harness to a loopback port.
require "sidekiq"

Sidekiq.configure_server do |config|
  config.logger.level = Logger::ERROR
end

class LoadWorker
  include Sidekiq::Worker
  sidekiq_options retry: 1

  def perform(idx, ts = nil)
  end
end
