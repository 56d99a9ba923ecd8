#include "train/stop_signals.h"

#include <csignal>
#include <cstring>
#include <initializer_list>

namespace tessera::train {

namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void record_stop_signal(int signal) {
  if (g_signal == 0) g_signal = signal;  // async-signal-safe: one store, nothing else
}

}  // namespace

void catch_stop_signals() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a write interrupted by the signal goes on
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &action, nullptr);
}

int stop_signal() { return g_signal; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace tessera::train
