# Training, evaluation and plots (docs/training.md).
#
#   make train                       train on the prepared data (runs `make data` first when
#                                    there is none) with tiny.json on a CPU-only machine,
#                                    btc_seed.json when a GPU is present
#   make train CONFIG=f.json SET='trainer.epochs=3 model.target=delta'
#   make train RESUME=runs/tiny-...  continue a run from its last checkpoint
#   make evaluate [RUN=dir] [EVAL_DATA=other.csv]   test metrics (metrics.md) and plots
#   make plots [RUN=dir]             redraw a run's plots (gnuplot)
# RUN defaults to the most recent folder under runs/.

TRAIN_DATA ?= $(or $(DATA),data_prepared)
RUN ?= $(patsubst %/,%,$(firstword $(shell ls -td runs/*/ 2>/dev/null)))

.PHONY: evaluate

train: all
	@if [ -z "$(RESUME)" ] && [ ! -f "$(TRAIN_DATA)/manifest.json" ]; then \
	  echo "[train] nothing prepared in $(TRAIN_DATA): running make data first"; \
	  $(MAKE) --no-print-directory data BUILD=$(BUILD) DATA=$(TRAIN_DATA); \
	fi
	$(BUILD)/bin/train $(if $(RESUME),--resume $(RESUME),$(if $(CONFIG),--config $(CONFIG)) \
	  --set data.dir=$(TRAIN_DATA)) $(foreach s,$(SET),--set $(s))

evaluate: all
	@test -n "$(RUN)" || { echo "make evaluate: no run folder (RUN=runs/...)"; exit 2; }
	$(BUILD)/bin/evaluate --run $(RUN) $(foreach f,$(EVAL_DATA),--data $(f))

plots: all
	@test -n "$(RUN)" || { echo "make plots: no run folder (RUN=runs/...)"; exit 2; }
	$(BUILD)/bin/evaluate --run $(RUN) --plots-only
