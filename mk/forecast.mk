# The out-of-regime forecasting check (docs/results.md, docs/forecasting.md): train the default
# config on the real history before 2020-11-01, validate on 2020-11 and 2020-12, then score the
# whole of 2021 and of 2023 against persistence and the naive rules.
#
#   make forecast-check FORECAST_CSV=btcusd_1-min_data.csv     (the Kaggle file, or the Binance
#                                                              2017-2023 file in the same layout)
#   make forecast-check FORECAST_CONFIG=models/configs/btc_seed.json FORECAST_OUT=runs/fc-seed
#
# Needs a GPU for the default config (a few minutes on an H100/H200); on a CPU it runs, slowly.
FORECAST_CSV ?= $(firstword $(wildcard $(SHARED_DATA)/btcusd_1-min_2017-2023.csv.gz))
FORECAST_CONFIG ?= models/configs/btc.json
FORECAST_OUT ?= runs/forecast-check
FORECAST_SET ?=

.PHONY: forecast-check
forecast-check: all
	@test -n "$(FORECAST_CSV)" || { echo "make forecast-check: give FORECAST_CSV=the Kaggle file"; exit 2; }
	bash scripts/forecast_check.sh $(BUILD) "$(FORECAST_CSV)" $(FORECAST_CONFIG) $(FORECAST_OUT) $(FORECAST_SET)
