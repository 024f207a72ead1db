# make docker: builds docker/Dockerfile as $(DOCKER_IMAGE) where a Docker engine is reachable;
# elsewhere says so and what to run instead.
DOCKER_IMAGE ?= minitensor:latest

docker:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  docker build -f docker/Dockerfile -t $(DOCKER_IMAGE) . && \
	  echo "built $(DOCKER_IMAGE); run: docker run --gpus all --rm $(DOCKER_IMAGE)"; \
	else \
	  echo "make docker: no Docker engine here (docker missing or its daemon unreachable)."; \
	  echo "On a machine with Docker and the NVIDIA container toolkit:"; \
	  echo "  docker build -f docker/Dockerfile -t $(DOCKER_IMAGE) ."; \
	  echo "  docker run --gpus all --rm $(DOCKER_IMAGE)"; \
	fi
