# Data targets (issue 3): preparing the dataset and the parse benchmark.
#
#   make data                         synthetic market -> $(DATA) (says plainly it is synthetic)
#   make data CSV="a.csv b.csv.gz"    real Kaggle-layout files -> $(DATA)
#   make data DATA=dir PREPARE_ARGS="--window 1024 --stats all"
#   make bench-data [BENCH_CSV=file]  reader speed (rows/s, MB/s); pandas.read_csv beside it
#                                     when python3 has pandas (the GPU machine does)
#
# $(DATA)/manifest.json is a file target too: `train` can depend on it to prepare data only when
# none is there.

DATA ?= data_prepared
CSV ?=
PREPARE_ARGS ?=
SHARED_DATA ?= ../shared/data
BENCH_CSV ?= $(firstword $(wildcard $(SHARED_DATA)/btcusd_1-min_2017-2023.csv.gz) \
                         $(wildcard $(SHARED_DATA)/btcusd_1-min_2023-06.csv))

data: $(DEPS_STAMP) $(BUILD)/bin/prepare
	$(BUILD)/bin/prepare $(if $(strip $(CSV)),--csv $(CSV),--synthetic) --out $(DATA) $(PREPARE_ARGS)

$(DATA)/manifest.json: | $(DEPS_STAMP) $(BUILD)/bin/prepare
	$(BUILD)/bin/prepare $(if $(strip $(CSV)),--csv $(CSV),--synthetic) --out $(DATA) $(PREPARE_ARGS)

bench-data: $(DEPS_STAMP) $(BUILD)/bin/prepare
	@bash scripts/bench_data.sh $(BUILD)/bin/prepare $(BENCH_CSV)
