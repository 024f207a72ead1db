# Training, evaluation and plots (docs/training.md).
#
#   make train                       train on the prepared data (runs `make data` first when
#                                    there is none) with tiny.json on a CPU-only machine,
#                                    btc_seed.json when a GPU is present
#   make train CSV=btcusd.csv        prepare that CSV first (kept when $(DATA) already holds it,
#                                    prepared with the same options), then train on it
#   make train CONFIG=f.json SET='trainer.epochs=3 model.target=delta'
#   make train RESUME=runs/tiny-...  continue a run from its last checkpoint (TRAIN_ARGS=
#                                    --switch-data to continue it on other data)
#   make evaluate [RUN=dir] [EVAL_DATA=other.csv]   test metrics (metrics.md) and plots
#   make plots [RUN=dir]             redraw a run's plots (gnuplot)
# RUN defaults to the run under $(RUNS) whose last checkpoint is the newest.

TRAIN_DATA ?= $(or $(DATA),data_prepared)
RUNS ?= runs
RUN ?=
TRAIN_ARGS ?=

.PHONY: evaluate

# One line, so that make echoes the command as a user would type it.
TRAIN_CMD = $(BUILD)/bin/train $(if $(RESUME),$(RESUME_ARGS),$(NEW_RUN_ARGS)) \
            $(foreach s,$(SET),--set $(s)) $(TRAIN_ARGS)
RESUME_ARGS = --resume $(RESUME) $(if $(strip $(CSV)),--set data.dir=$(TRAIN_DATA))
NEW_RUN_ARGS = $(if $(CONFIG),--config $(CONFIG)) --set data.dir=$(TRAIN_DATA)

train: all
	@if [ -n "$(strip $(CSV))" ]; then \
	  $(BUILD)/bin/prepare --csv $(CSV) --out $(TRAIN_DATA) --reuse $(PREPARE_ARGS); \
	elif [ -z "$(RESUME)" ] && [ ! -f "$(TRAIN_DATA)/manifest.json" ]; then \
	  echo "[train] nothing prepared in $(TRAIN_DATA): running make data first"; \
	  $(MAKE) --no-print-directory data BUILD=$(BUILD) DATA=$(TRAIN_DATA); \
	fi
	$(TRAIN_CMD)

evaluate: all
	$(BUILD)/bin/evaluate $(if $(RUN),--run $(RUN),--latest-run $(RUNS)) $(foreach f,$(EVAL_DATA),--data $(f))

plots: all
	$(BUILD)/bin/evaluate $(if $(RUN),--run $(RUN),--latest-run $(RUNS)) --plots-only
