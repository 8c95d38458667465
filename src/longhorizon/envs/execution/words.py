"""Common five-letter English words, used as dictionary keys (the paper draws 5-letter words)."""

WORDS = tuple(
    """
    apple beach bread brick cabin candy chair chalk chess cloud coast coral couch crane crown
    daisy dance delta diary dough dream drink eagle earth elbow ember fable fairy fence ferry
    field flame flock flute forge frost fruit ghost giant glass globe grape grass greed guard
    guide habit heart honey horse hotel house igloo image inlet ivory jelly jewel juice kayak
    kite knife koala label lemon level light lilac linen llama lodge lunar magic mango maple
    march medal melon metal mirth model money moose mouse music nerve night noble north novel
    ocean olive onion opera orbit otter paint panel paper party peach pearl pedal piano pilot
    pizza plane plant plaza plumb poems pouch power prism pulse quail queen quest quiet quilt
    radar radio raven river robin rocket rover royal ruler salad scale scarf scout shade sheep
    shelf shell shirt shore skate skirt slope smile snake solar spice spoon sport squid staff
    stage stair steam stone storm stove sugar sunny swamp sword table tango tiger toast topaz
    torch tower trail train tribe trout tulip uncle unity urban valve vapor vault venom verse
    video vinyl viola voice wagon waltz watch water whale wheat wheel witch woman world wrist
    yacht yeast youth zebra
    """.split()
)
WORDS = tuple(w for w in WORDS if len(w) == 5)
