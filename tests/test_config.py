import pytest

from orthonets_paddle.engine.config import ConfigError, apply_override, load_config, parse_value

CFG = "configs/orthonet18_cifar10.yaml"


@pytest.mark.parametrize("text,value", [
    ("1", 1), ("0.5", 0.5), ("5e-4", 5e-4), ("1.0e-4", 1e-4), ("true", True), ("False", False),
    ("None", None), ("null", None), ("[30, 60, 90]", [30, 60, 90]), ("./out/run", "./out/run"),
    ("[0.5,0.5]", [0.5, 0.5]), ("O1", "O1")])
def test_override_values_are_typed(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_overrides_reach_nested_keys_and_list_items():
    cfg = load_config(CFG, ["Global.epochs=3", "DataLoader.Train.sampler.batch_size=8",
                            "DataLoader.Train.dataset.num_samples=40",
                            "DataLoader.Train.dataset.transform_ops[0].RandomCrop.padding=2",
                            "DataLoader.Eval.dataset.transform_ops.1.ToTensor=null",
                            "Optimizer.lr.decay_epochs=[1,2,3]", "Global.pretrained_model=None",
                            "Arch.width=8"])
    assert cfg["Global"]["epochs"] == 3
    assert cfg["DataLoader"]["Train"]["sampler"]["batch_size"] == 8
    assert cfg["DataLoader"]["Train"]["dataset"]["num_samples"] == 40
    assert cfg["DataLoader"]["Train"]["dataset"]["transform_ops"][0] == {"RandomCrop": {"size": 32, "padding": 2}}
    assert cfg["DataLoader"]["Eval"]["dataset"]["transform_ops"][1] == {"ToTensor": None}
    assert cfg["Optimizer"]["lr"]["decay_epochs"] == [1, 2, 3]
    assert cfg["Arch"]["width"] == 8
    assert cfg["Global"]["pretrained_model"] is None  # null, not the text "None"
    paths = load_config(CFG, ["Global.output_dir=2024", "Arch.squeeze=null"])
    assert paths["Global"]["output_dir"] == "2024" and paths["Arch"]["squeeze"] is None


def test_seed_recipe_is_in_the_config():
    cfg = load_config(CFG)
    t = cfg["DataLoader"]["Train"]
    assert (t["sampler"]["batch_size"], t["sampler"]["drop_last"], cfg["Global"]["epochs"],
            cfg["Global"]["seed"]) == (256, True, 100, 42)
    # The seed's MultiStepDecay (0.1, x0.1 at 30/60/90) in PaddleClas's Piecewise form.
    assert cfg["Optimizer"] == {"name": "Momentum", "momentum": 0.9,
                                "lr": {"name": "Piecewise", "decay_epochs": [30, 60, 90],
                                       "values": [0.1, 0.01, 0.001, 0.0001]},
                                "regularizer": {"name": "L2", "coeff": 5e-4}}
    assert cfg["Loss"] == {"Train": [{"CELoss": {"weight": 1.0, "epsilon": 0.1}}],
                           "Eval": [{"CELoss": {"weight": 1.0, "epsilon": 0.1}}]}
    assert [list(op)[0] for op in t["dataset"]["transform_ops"]] == [
        "RandomCrop", "ColorJitter", "RandomHorizontalFlip", "RandomRotation", "ToTensor", "Normalize"]


@pytest.mark.parametrize("override,message", [
    ("Global.epoch=1", "Global.epoch: unknown key; did you mean epochs"),
    ("Globals.epochs=1", "unknown section 'Globals'; did you mean Global"),
    ("DataLoader.Train.dataset.num_sampels=4", "did you mean num_samples"),
    ("DataLoader.Train.sampler.batchsize=4", "did you mean batch_size"),
    ("Optimizer.lr.decay_epoch=[1]", "did you mean decay_epochs"),
    ("Arch.widht=8", "did you mean width"),
    ("Arch.name=orthonet19", "did you mean 'orthonet18'"),
    ("DataLoader.Train.dataset.transform_ops[0].RandomCrop.sizes=3", "did you mean size"),
    ("DataLoader.Train.dataset.transform_ops[9].RandomCrop.size=3", "list of 6 items"),
    ("Global.epochs", "must look like Section.key=value"),
    ("Global.device=tpu", "Global.device must be one of auto, cpu, gpu, got 'tpu'"),
    ("Global.epochs=0", "Global.epochs must be an integer >= 1 and <= 1000000, got 0"),
])
def test_bad_overrides_name_the_nearest_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(CFG, [override])


def test_unknown_key_in_file_is_an_error(tmp_path):
    text = open(CFG).read().replace("  print_batch_step: 10", "  print_batch_stpe: 10")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="print_batch_stpe: unknown key; did you mean print_batch_step"):
        load_config(str(path))
    path.write_text("Globl: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="unknown section 'Globl'"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_every_shipped_config_is_valid():
    import glob
    paths = sorted(glob.glob("configs/*.yaml"))
    assert len(paths) >= 7
    for path in paths:
        assert load_config(path)["Arch"]["name"]


def test_apply_override_does_not_create_keys_silently():
    cfg = load_config(CFG)
    apply_override(cfg, "Global.new_key=1")  # lands, then validation refuses it
    from orthonets_paddle.engine.config import validate_config
    with pytest.raises(ConfigError, match="new_key"):
        validate_config(cfg)


# Each mistyped value of the issue: one ConfigError naming the full key and what is allowed.
@pytest.mark.parametrize("override,message", [
    ("Optimizer.momentum=abc", "Optimizer.momentum must be a number >= 0 and <= 1, got 'abc'"),
    ("Optimizer.momentum=1.5", "Optimizer.momentum must be a number >= 0 and <= 1, got 1.5"),
    ("Optimizer.regularizer.coeff=abc", "Optimizer.regularizer.coeff must be a number >= 0"),
    ("Optimizer.lr.learning_rate=abc", "Optimizer.lr.learning_rate must be a number >= 0, got 'abc'"),
    ("Optimizer.lr.decay_epochs=[1,x,3]", "Optimizer.lr.decay_epochs[1] must be an integer >= 1 and <= 1000000"),
    ("Global.seed=abc", "Global.seed must be an integer >= 0 and <= 4294967295, got 'abc'"),
    ("Loss.Train[0].CELoss.epsilon=abc", "CELoss.epsilon must be in [0, 1)"),
    ("Loss.Train[0].CELoss.epsilon=1", "CELoss.epsilon must be in [0, 1), got 1"),
    ("Global.save_interval=abc", "Global.save_interval must be an integer >= 0 and <= 1000000, got 'abc'"),
    ("Global.save_interval=-1", "Global.save_interval must be an integer >= 0 and <= 1000000, got -1"),
    ("Global.use_visualdl=maybe", "Global.use_visualdl must be true or false, got 'maybe'"),
    ("Global.overwrite=yes please", "Global.overwrite must be true or false"),
    ("Global.image_shape=[3,32]", "Global.image_shape must be a list of 3 items, each an integer >= 1 and <= 8192"),
    ("DataLoader.Train.sampler.batch_size=0", "DataLoader.Train.sampler.batch_size must be an integer >= 1 and <= 65536, got 0"),
    ("DataLoader.Eval.loader.num_workers=-2", "DataLoader.Eval.loader.num_workers must be an integer >= 0"),
    ("DataLoader.Train.dataset.num_samples=abc", "DataLoader.Train.dataset.num_samples must be"),
    ("Arch.class_num=ten", "Arch.class_num must be an integer >= 1 and <= 1000000, got 'ten'"),
    ("AMP.level=O3", "AMP.level must be one of O1, O2"),
])
def test_mistyped_values_are_one_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CFG, [override])
    assert message in str(info.value)


# Issue 28: values in range for the type but not for any real run, and empty paths. Each
# bound is stated in the message; the upper ones say why. (Today: accepted, then an
# OverflowError, NumPy's seed error naming no key, gigabytes allocated, or "No such file: ''".)
@pytest.mark.parametrize("override,message", [
    ("Global.epochs=1e21", "Global.epochs must be an integer >= 1 and <= 1000000, got 10000000"),
    ("Global.seed=18446744073709551616", "Global.seed must be an integer >= 0 and <= 4294967295, "
                                         "got 18446744073709551616 (the bound: NumPy's seed range)"),
    ("Arch.seed=4294967296", "Arch.seed must be an integer >= 0 and <= 4294967295"),
    ("Arch.width=1e8", "Arch.width must be an integer >= 1 and <= 1024, got 100000000 (the bound:"),
    ("Arch.class_num=1e10", "Arch.class_num must be an integer >= 1 and <= 1000000, got 10000000000"),
    ("Global.output_dir=''", "Global.output_dir must be a path (non-empty text), got ''"),
    ("Global.pretrained_model=''", "Global.pretrained_model must be a path (non-empty text) or null"),
    ("Global.checkpoints='  '", "Global.checkpoints must be a path"),
    ("DataLoader.Train.dataset.data_file=''", "DataLoader.Train.dataset.data_file must be a path"),
    ("Infer.infer_imgs=''", "Infer.infer_imgs must be a path"),
    # variants of the same classes
    ("Global.epochs=.inf", "Global.epochs must be an integer >= 1 and <= 1000000, got inf"),
    ("Global.print_batch_step=1e21", "Global.print_batch_step must be an integer >= 1 and <= 1000000000"),
    ("Global.eval_interval=true", "Global.eval_interval must be an integer >= 1 and <= 1000000, got True"),
    ("Global.image_shape=[3,100000000,32]", "Global.image_shape[1] must be an integer >= 1 and <= 8192"),
    ("DataLoader.Train.loader.num_workers=100000", "num_workers must be an integer >= 0 and <= 256"),
    ("DataLoader.Train.sampler.batch_size=1e9", "batch_size must be an integer >= 1 and <= 65536"),
    ("DataLoader.Train.dataset.num_samples=1e21", "num_samples must be an integer >= 1 and <= 2147483647 or null"),
    ("Infer.batch_size=1e12", "Infer.batch_size must be an integer >= 1 and <= 65536"),
    ("Optimizer.lr.warmup_epoch=1e300", "Optimizer.lr.warmup_epoch must be a number >= 0 and <= 1e+06"),
    ("Arch.drop_path_rate=1.5", "Arch.drop_path_rate must be a number >= 0 and < 1, got 1.5"),
    ("Arch.out_indices=[0,7]", "Arch.out_indices[1] must be an integer >= 0 and <= 3, got 7"),
])
def test_out_of_range_values_and_empty_paths_are_one_error_naming_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CFG, [override])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_bounds_admit_their_own_limits():
    cfg = load_config(CFG, ["Global.seed=4294967295", "Arch.seed=0", "Global.epochs=1000000",
                            "Arch.class_num=1000000", "Arch.width=1024", "Global.output_dir=x"])
    assert (cfg["Global"]["seed"], cfg["Global"]["epochs"]) == (2**32 - 1, 10**6)


def test_numbers_written_as_text_in_yaml_are_numbers(tmp_path):
    # PyYAML reads 5e-4 (no dot) as a string; the schema accepts it as the number it is.
    text = open(CFG).read().replace("coeff: 0.0005", "coeff: 5e-4")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    cfg = load_config(str(path))
    coeff = cfg["Optimizer"]["regularizer"]["coeff"]
    assert coeff == 5e-4 and isinstance(coeff, float)


def test_missing_arch_is_an_error(tmp_path):
    text = open(CFG).read()
    start = text.index("Arch:")
    end = text.index("Loss:")
    path = tmp_path / "noarch.yaml"
    path.write_text(text[:start] + text[end:])
    with pytest.raises(ConfigError, match="the config needs Arch"):
        load_config(str(path))


def test_non_utf8_config_names_the_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(open(CFG, "rb").read().replace(b"# OrthoNet-18", b"# Orthon\xe9t-18"))
    with pytest.raises(ConfigError, match="latin1.yaml is not UTF-8"):
        load_config(str(path))


def test_mistyped_value_leaves_the_run_folder_untouched(tmp_path):
    """The CLI stops before anything is written: an existing run's files keep their bytes."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("previous run\n")
    (out / "latest.pdparams").write_bytes(b"weights")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = subprocess.run([sys.executable, os.path.join(root, "tools", "train.py"), "-c", CFG,
                           "-o", f"Global.output_dir={out}", "-o", "Optimizer.momentum=abc"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Optimizer.momentum must be a number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# PaddleClas's keys: honoured, refused with the reason, or moved (this package's old layout).
@pytest.mark.parametrize("override,message", [
    ("Global.use_dali=True", "Global.use_dali: True cannot be honoured: NVIDIA DALI"),
    ("Arch.data_format=NHWC", "Arch.data_format: 'NHWC' cannot be honoured: the models here are NCHW"),
    ("Global.eval_mode=retrieval", "only classification is supported"),
    ("Arch.Head={name: FC}", "Arch.Head: RecModel (retrieval) architectures are not supported"),
    ("Global.class_num=10", "Global.class_num is now Arch.class_num"),
    ("AMP.enable=True", "AMP.enable is now AMP.use_amp"),
    ("Optimizer.weight_decay=5e-4", "Optimizer.weight_decay is now Optimizer.regularizer"),
    ("DataLoader.Train.batch_size=8", "DataLoader.Train.batch_size is now DataLoader.Train.sampler.batch_size"),
    ("Infer.topk=3", "Infer.topk is now Infer.PostProcess.topk"),
    ("Arch.name=SE_ResNet50_vd", "nearest: se_resnet50"),
    ("Metric.Eval=[{TopkAcc: {topk: [1, 3]}}]", "reports top-1 and top-5 only"),
    ("Loss.Train=[{TripletLossV2: {weight: 1.0}}]", "unknown loss 'TripletLossV2'"),
])
def test_paddleclas_keys_are_honoured_or_refused_by_name(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CFG, [override])
    assert message in str(info.value)


def test_paddleclas_values_that_mean_off_are_accepted_and_names_map():
    cfg = load_config(CFG, ["Global.use_dali=False", "Arch.data_format=NCHW", "Arch.name=SE_ResNet18",
                            "Optimizer.lr.last_epoch=-1", "AMP.use_promote=False"])
    assert cfg["Arch"]["name"] == "se_resnet18"
    assert load_config(CFG, ["Arch.name=OrthoNet_MOD_50"])["Arch"]["name"] == "orthonet_mod_50"


def _optimizer_yaml(tmp_path, section: str) -> str:
    text = open(CFG).read()
    start, end = text.index("Optimizer:"), text.index("DataLoader:")
    path = tmp_path / "opt.yaml"
    path.write_text(text[:start] + section + text[end:])
    return str(path)


def test_adamw_weight_decay_reaches_the_optimizer(tmp_path):
    """The bug of issue 27: AdamW's weight_decay was refused as a moved key, so AdamW ran at
    Paddle's silent 0.01. Read back from the built optimizer, in a file and an override."""
    import paddle
    from orthonets_paddle.engine.optim import build_optimizer
    path = _optimizer_yaml(tmp_path, "Optimizer:\n  name: AdamW\n  weight_decay: 0.05\n"
                                     "  lr: {name: Constant, learning_rate: 0.001}\n")
    by_override = load_config(CFG, ["Optimizer={name: AdamW, weight_decay: 0.05, lr: {name: "
                                    "Cosine, learning_rate: 0.001}}"])
    for cfg in (load_config(path), by_override):
        opt, _ = build_optimizer(cfg["Optimizer"], paddle.nn.Linear(2, 2).parameters(), 4, 2)
        assert isinstance(opt, paddle.optimizer.AdamW) and opt._weight_decay == 0.05
    # Momentum and SGD decay through the regularizer (PaddleClas's schema) and say so.
    with pytest.raises(ConfigError, match="Optimizer.weight_decay is now Optimizer.regularizer"):
        load_config(CFG, ["Optimizer.weight_decay=0.05"])


@pytest.mark.parametrize("name", ["Momentum", "SGD", "AdamW"])
def test_every_key_an_optimizer_offers_reaches_it(name, tmp_path):
    """Each key the config accepts for an optimizer is one its builder takes, and every key
    its builder takes is accepted (one source: the builder's signature)."""
    import inspect
    import paddle
    from orthonets_paddle.engine.optim import OPTIMIZERS, build_optimizer
    params = {p.name: p.default for p in inspect.signature(OPTIMIZERS[name]).parameters.values()
              if p.kind is p.KEYWORD_ONLY}
    params = {k: ({"name": "L2", "coeff": 1e-4} if k == "regularizer" else v)
              for k, v in params.items()}
    lines = "".join(f"  {k}: {v}\n" for k, v in params.items() if k != "regularizer")
    if "regularizer" in params:
        lines += "  regularizer: {name: L2, coeff: 0.0001}\n"
    cfg = load_config(_optimizer_yaml(tmp_path, f"Optimizer:\n  name: {name}\n{lines}"
                                                "  lr: {name: Constant, learning_rate: 0.1}\n"))
    assert {k: v for k, v in cfg["Optimizer"].items() if k not in ("name", "lr")} == params
    build_optimizer(cfg["Optimizer"], paddle.nn.Linear(2, 2).parameters(), 4, 2)


def test_every_typed_key_is_a_key_of_its_section():
    """SCHEMA types values only: each of its keys is one a builder or DEFAULTS offers."""
    from orthonets_paddle.engine import config
    for dotted in config.SCHEMA:
        section, key = dotted.rsplit(".", 1)
        offered = set()
        for name in ("Momentum", "SGD", "AdamW", "Piecewise", "MultiStepDecay", "Cosine",
                     "Constant", "Cifar10", "BatchSampler", "FashionMNIST", "ImageFolder",
                     "Synthetic", "ImageNetDataset"):
            try:
                offered |= set(config._KEYS[section]({"name": name}))
            except ValueError:
                pass
        assert key in offered, dotted


@pytest.mark.parametrize("override,message", [
    # a required key of the sampler's builder (no default): refused before any data is read
    ("DataLoader.Train.sampler={shuffle: true}", "DataLoader.Train.sampler needs batch_size"),
    ("DataLoader.Train.sampler.name=PKSampler", "DataLoader.Train.sampler.name: sampler: "
                                                "unknown name 'PKSampler'"),
    ("Optimizer.lr={name: Piecewise, decay_epochs: [3]}", "Optimizer.lr needs values"),
    ("Optimizer.name=Adam", "Optimizer.name: unknown optimizer 'Adam'; did you mean 'AdamW'"),
    ("DataLoader.Eval.dataset.transforms=[]", "DataLoader.Eval.dataset.transforms is now "
                                              "DataLoader.Eval.dataset.transform_ops"),
    ("DataLoader.Train.loader.num_worker=2", "did you mean num_workers"),
    ("Optimizer.regularizer.coef=0.1", "did you mean coeff"),
])
def test_builder_keys_are_checked_at_load(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(CFG, [override])
    assert message in str(info.value)


def test_ema_section_and_update_freq_are_paddleclas_keys(tmp_path):
    path = tmp_path / "ema.yaml"
    path.write_text(open(CFG).read() + "EMA:\n  decay: 0.999\n")
    assert load_config(str(path))["EMA"] == {"decay": 0.999}
    assert load_config(CFG).get("EMA") is None  # off unless the section is there
    assert load_config(CFG, ["Global.update_freq=4"])["Global"]["update_freq"] == 4
    for override, message in (("EMA.decay=1", "EMA.decay must be a number >= 0 and < 1"),
                              ("Global.update_freq=0", "update_freq must be an integer >= 1"),
                              ("Global.use_ema=True", "Global.use_ema is now EMA: {decay")):
        with pytest.raises(ConfigError, match=message.replace("{", "\\{")):
            load_config(CFG, [override])


# ----------------------------------------------------------------------------- one bounded YAML reader
def _alias_bomb(levels: int = 9) -> str:
    """Nested anchors: ~1 KB of text, 10**levels values when expanded."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_the_package_reads_yaml_only_through_yamlio():
    """A structural check: every YAML the package reads is bounded (utils/yamlio)."""
    import os
    import re
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    loader = re.compile(r"\byaml\.(safe_load|load|full_load|unsafe_load|load_all|safe_load_all|"
                        r"compose|compose_all|parse|scan)\s*\(|\bfrom yaml import\b")
    found = []
    for top in ("orthonets_paddle", "tools"):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                path = os.path.join(folder, name)
                if name.endswith(".py") and not path.endswith(os.path.join("utils", "yamlio.py")):
                    text = open(path, encoding="utf-8").read()
                    found += [f"{path}: {m.group(0)}" for m in loader.finditer(text)]
    assert found == []


def test_compare_refuses_an_alias_bomb_in_a_run_folder_in_one_line(tmp_path):
    # The issue: plain yaml.safe_load there took 6.7 GB and 2 minutes on this 1 KB file.
    import json
    import subprocess
    import sys
    from orthonets_paddle.engine.runs import RunError, compare_runs
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"arch": "resnet18", "best_acc": 0.5}))
    (run / "config.yaml").write_text(_alias_bomb() + "Arch: {name: resnet18, class_num: 10, "
                                     "stem: *l8}\n")
    assert (run / "config.yaml").stat().st_size < 1100
    with pytest.raises(RunError, match=r"config.yaml.*expand to more than 100,000 values"):
        compare_runs([str(run)])
    proc = subprocess.run([sys.executable, "tools/compare.py", str(run), "--out",
                           str(tmp_path / "cmp")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: RunError: ") and "expand to more than" in last


def test_a_run_folders_config_is_checked_as_train_checks_it(tmp_path):
    """compare counts the parameters of the model a run folder's config.yaml builds: a
    planted Arch list or width 1e8 is refused naming the file and key (was an
    AttributeError, or gigabytes allocated)."""
    import json
    from orthonets_paddle.engine.runs import RunError, compare_runs
    for i, arch in enumerate(("[resnet18, 10]", "{name: resnet18, class_num: 10, width: 1e8}")):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps({"arch": "resnet18", "best_acc": 0.5}))
        (run / "config.yaml").write_text(f"Arch: {arch}\n")
        with pytest.raises(RunError, match=r"run\d/config.yaml: Arch(.width)? must be"):
            compare_runs([str(run)])


def test_override_values_and_followed_files_are_bounded_too(tmp_path):
    from orthonets_paddle.utils.yamlio import YamlError, check_yaml
    bomb = "[" + ", ".join(line.split(": ", 1)[1] for line in _alias_bomb().splitlines()) + "]"
    with pytest.raises(ConfigError, match="expand to more than"):  # -o with aliases
        load_config(CFG, [f"Infer.PostProcess.class_names={bomb}"])
    merge = "m0: &m0 {a: 1, b: 2}\n" + "".join(  # merge keys expand as aliases do
        f"m{i}: &m{i} {{<<: *m{i - 1}, x{i}: [{', '.join([f'*m{i - 1}'] * 10)}]}}\n"
        for i in range(1, 9))
    (tmp_path / "merge.yaml").write_text(open(CFG).read() + merge)
    with pytest.raises(ConfigError, match="expand to more than"):  # -c with merge keys
        load_config(str(tmp_path / "merge.yaml"))
    # PaddleDetection reads its configs itself (own tags, _BASE_ files): checked first
    (tmp_path / "base.yml").write_text(_alias_bomb())
    (tmp_path / "det.yml").write_text("_BASE_: [base.yml]\nmodel: !SomeTag {x: 1}\n")
    with pytest.raises(YamlError, match=r"base.yml: its aliases \(\*name\) expand"):
        check_yaml(str(tmp_path / "det.yml"))
    (tmp_path / "base.yml").write_text("epoch: 12\nLearningRate: !LearningRate {base_lr: 0.01}\n")
    check_yaml(str(tmp_path / "det.yml"))  # tags are the reader's business, not the bound's


def test_an_output_folder_inside_an_image_folder_is_refused(tmp_path):
    # The issue: output_dir in an ImageFolder class folder; the next run trained on its
    # own loss.png / acc.png (and a run's subfolders would become classes).
    import os
    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    os.symlink(root / "cat", tmp_path / "link")
    text = open("configs/orthonet50_imagenet.yaml").read().replace("./data/ILSVRC2012", str(root))
    (tmp_path / "c.yaml").write_text(text)
    for out in (root / "cat" / "run", root, root / "new_class", tmp_path / "link" / "run",
                f"{root}/../data/dog/x"):
        with pytest.raises(ConfigError, match=r"Global.output_dir .* is inside "
                                              r"DataLoader.Train.dataset.root .*outside it"):
            load_config(str(tmp_path / "c.yaml"), [f"Global.output_dir={out}"])
    for out in (tmp_path / "runs" / "a", tmp_path / "data_runs"):  # beside it: fine
        load_config(str(tmp_path / "c.yaml"), [f"Global.output_dir={out}"])
    # with split folders only root/train and root/val are read
    os.rename(root / "cat", tmp_path / "cat")
    (root / "train").mkdir()
    os.rename(tmp_path / "cat", root / "train" / "cat")
    load_config(str(tmp_path / "c.yaml"), [f"Global.output_dir={root / 'runs'}"])
    for out in (root / "train" / "cat" / "run", root / "train", root):
        with pytest.raises(ConfigError, match="is inside DataLoader.Train.dataset.root"):
            load_config(str(tmp_path / "c.yaml"), [f"Global.output_dir={out}"])


@pytest.mark.parametrize("section,value,message", [
    ("Arch", [{"name": "orthonet18"}], "Arch must be a mapping (got a list: [{'name': 'orthonet18'}])"),
    ("Optimizer", ["Momentum"], "Optimizer must be a mapping (got a list"),
    # were TypeError tracebacks: a list where a name or a number belongs
    ("DataLoader.Train.dataset.name", ["Cifar10"], "DataLoader.Train.dataset.name must be a string, got ['Cifar10']"),
    ("DataLoader.Eval.sampler.name", ["BatchSampler"], "DataLoader.Eval.sampler.name must be a string"),
    ("Loss.Train", [{"CELoss": {"weight": [1.0]}}], "Loss.Train: float() argument must be"),
])
def test_wrong_shapes_in_a_file_are_one_config_error(tmp_path, section, value, message):
    import yaml
    cfg = yaml.safe_load(open(CFG))
    *parents, key = section.split(".")
    node = cfg
    for p in parents:
        node = node[p]
    node[key] = value
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "c.yaml"))
    assert message in str(info.value)


def test_a_config_file_too_big_to_be_one_is_refused_unread(tmp_path):
    # 1.5 MB of a flat list: composed in full (hundreds of MB of nodes) before the
    # expanded-size count could refuse it; now refused from its size
    path = tmp_path / "big.yaml"
    path.write_text(open(CFG).read() + "Infer:\n  PostProcess:\n    class_names: ["
                    + "a," * 750_000 + "a]\n")
    with pytest.raises(ConfigError, match=r"big.yaml is larger than 1 MB; a config is never"):
        load_config(str(path))
