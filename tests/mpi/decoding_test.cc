// Decoding under tensor parallelism: with tp = world size and a vocabulary that tp does not
// divide, greedy and beam-search outputs (and beam scores) match the single-process run of the
// same weights: the initialisation (keyed by global coordinates) and a trained model's weights
// copied slice by slice. Every rank holds only its heads' key/value cache and its logits' slice.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <vector>

#include "data/synthetic_task.h"
#include "eval/beam_search.h"
#include "kernels/ops.h"
#include "parallel/process_grid.h"
#include "train/trainer.h"

namespace tessera {
namespace {

train::TrainOptions decoding_options(int tp) {
  train::TrainOptions o;
  o.model.vocab_size = 29;  // padded to 30 at tp=2, 32 at tp=4
  o.model.d_model = 32;
  o.model.d_ff = 48;
  o.model.heads = 4;
  o.model.encoder_layers = 2;
  o.model.decoder_layers = 2;
  o.model.dropout = 0.1f;
  o.warmup = 50;
  o.batch_sentences = 16;
  o.seed = 4321;
  o.tensor_parallel = tp;
  o.data_parallel = 1;
  return o;
}

int world_size() {
  int world = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  return world;
}

// Element i of a parameter's local slice -> flat index in the single-process (unpadded) global
// tensor, or -1 for a padded vocabulary row.
int64_t global_flat_index(const model::ParamInfo& p, const Shape& global_shape, int64_t i) {
  std::vector<int64_t> idx(p.local_shape.size());
  for (size_t d = idx.size(); d-- > 0;) {
    idx[d] = i % p.local_shape[d];
    i /= p.local_shape[d];
  }
  if (!p.partition.is_replicated()) idx[p.partition.dim] += p.partition.index * p.local_shape[p.partition.dim];
  int64_t flat = 0;
  for (size_t d = 0; d < idx.size(); ++d) {
    if (idx[d] >= global_shape[d]) return -1;
    flat = flat * global_shape[d] + idx[d];
  }
  return flat;
}

// Gives the sharded model exactly the single-process model's weights: every rank copies its slice
// of each global parameter. (Training both instead would compare two trajectories, which drift
// apart by rounding.)
void copy_weights(const model::ParameterStore& from, model::ParameterStore& to) {
  ASSERT_EQ(from.size(), to.size());
  for (size_t id = 0; id < to.size(); ++id) {
    const model::ParamInfo& p = to.info(static_cast<int>(id));
    const Tensor want = from.value(static_cast<int>(id));
    Tensor got = to.value(static_cast<int>(id));
    for (int64_t i = 0; i < got.numel(); ++i) {
      const int64_t g = global_flat_index(p, from.info(static_cast<int>(id)).global_shape, i);
      got.data<double>()[i] = g < 0 ? 0.0 : want.data<double>()[g];
    }
  }
}

// Greedy, beam 4 (n-best lists and scores) and beam 1 of the sharded model against the single
// process.
void check_decoding(model::Transformer& sharded, model::Transformer& reference, const model::Batch& batch) {
  const auto greedy = reference.greedy_decode(batch.src, batch.src_lengths, 20);
  EXPECT_EQ(sharded.greedy_decode(batch.src, batch.src_lengths, 20), greedy);

  eval::BeamOptions beam;
  beam.max_len_b = 10;
  const auto want = eval::beam_search_nbest(reference, batch.src, batch.src_lengths, beam);
  const auto got = eval::beam_search_nbest(sharded, batch.src, batch.src_lengths, beam);
  ASSERT_EQ(got.size(), want.size());
  for (size_t s = 0; s < want.size(); ++s) {
    ASSERT_EQ(got[s].size(), want[s].size()) << "sentence " << s;
    for (size_t h = 0; h < want[s].size(); ++h) {
      EXPECT_EQ(got[s][h].tokens, want[s][h].tokens) << "sentence " << s << " hypothesis " << h;
      EXPECT_NEAR(got[s][h].score, want[s][h].score, 1e-9 * (1 + std::abs(want[s][h].score)));
    }
  }
  // Beam 1 is greedy under tensor parallelism too.
  beam.beam = 1;
  beam.max_len_a = 0;
  beam.max_len_b = 20;
  EXPECT_EQ(eval::beam_search(sharded, batch.src, batch.src_lengths, beam), greedy);
}

model::Batch held_out_batch(const train::TrainOptions& o) {
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.min_len = 2;
  task.max_len = 9;
  task.seed = o.seed + 1;
  const auto pairs = task.pairs(data::kHeldOutSplit, 0, 12);
  return model::Batch::from_pairs(pairs, 0, pairs.size(), 0, o.model.pad_id, o.model.bos_id, o.model.eos_id);
}

// At initialisation the hypotheses run to the maximum length (many steps of beam reselection);
// after some training they end in eos at different lengths.
TEST(DecodingLayout, GreedyAndBeamMatchSingleProcess) {
  kernels::set_num_threads(1);
  const int tp = world_size();
  parallel::ProcessGrid single = parallel::ProcessGrid::single();
  train::Trainer reference(decoding_options(1), single, DType::f64);
  parallel::ProcessGrid grid(tp, 1, 60.0);
  train::Trainer sharded(decoding_options(tp), grid, DType::f64);
  const model::Batch batch = held_out_batch(decoding_options(1));
  {
    SCOPED_TRACE("tp=" + std::to_string(tp) + ", initial weights");
    check_decoding(sharded.model(), reference.model(), batch);
  }
  const train::TrainOptions o = decoding_options(1);
  data::SyntheticTask task;
  task.vocab_size = o.model.vocab_size;
  task.min_len = 3;
  task.max_len = 9;
  task.seed = o.seed;
  for (int64_t step = 0; step < 200; ++step)
    reference.train_step(task.pairs(data::kTrainSplit, step * o.batch_sentences, o.batch_sentences));
  copy_weights(reference.store(), sharded.store());
  {
    SCOPED_TRACE("tp=" + std::to_string(tp) + ", trained weights");
    check_decoding(sharded.model(), reference.model(), batch);
  }
}

}  // namespace
}  // namespace tessera
