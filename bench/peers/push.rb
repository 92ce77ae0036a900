# Pushes N LoadWorker jobs with Sidekiq::Client.push_bulk in batches of
# 10,000, as Sidekiq's bin/sidekiqload does, then prints
# `pushed N in SECONDS` for the harness. Usage: ruby push.rb N [SPIN_US]
# The jobs go to queue "staging", which no Sidekiq process reads: the harness
# renames it to queue:default once every Sidekiq process is up, so the drain
# is timed with all of them ready (a burn-down, like sidekiqload's).
require "sidekiq"
require_relative "worker"

total = Integer(ARGV.fetch(0))
spin_us = Integer(ARGV.fetch(1, "0"))
batch = 10_000
Sidekiq.redis { |c| c.flushdb }
started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
pushed = 0
while pushed < total
  n = [batch, total - pushed].min
  args = Array.new(n) { |i| [pushed + i, spin_us] }
  Sidekiq::Client.push_bulk("class" => LoadWorker, "args" => args, "queue" => "staging")
  pushed += n
end
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
puts "pushed #{pushed} in #{elapsed}"
