"""The words Doorstep listens for, in English, Canadian French and Spanish (accents folded).

Patterns match the canonical token string built in `text.py`: lower case, no accents, shorthand
spelled out, tokens separated by single spaces. Every word a pattern names is also a "known word",
so a typo of it is corrected before matching.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# SMS shorthand and common spellings, token -> words (applied after folding, before typo correction).
SHORTHAND: dict[str, str] = {
    # English
    "2moro": "tomorrow",
    "nvm": "never mind",
    "2morow": "tomorrow",
    "2morrow": "tomorrow",
    "2mrw": "tomorrow",
    "2mro": "tomorrow",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tmrow": "tomorrow",
    "tmw": "tomorrow",
    "tomoz": "tomorrow",
    "tmoro": "tomorrow",
    "tomoro": "tomorrow",
    "tommorow": "tomorrow",
    "tommorrow": "tomorrow",
    "2day": "today",
    "2nite": "tonight",
    "tonite": "tonight",
    "nite": "night",
    "pls": "please",
    "plz": "please",
    "plse": "please",
    "pleez": "please",
    "thx": "thanks",
    "tysm": "thank you so much",
    "ouin": "oui",
    "thnx": "thanks",
    "thks": "thanks",
    "thanx": "thanks",
    "tks": "thanks",
    "ty": "thank you",
    "tyvm": "thank you",
    "tx": "thanks",
    "u": "you",
    "r": "are",
    "ur": "your",
    "im": "i am",
    "b4": "before",
    "aft": "after",
    "morn": "morning",
    "mornin": "morning",
    "arvo": "afternoon",
    "eve": "evening",
    "wat": "what",
    "wen": "when",
    "whn": "when",
    "wer": "where",
    "whr": "where",
    "wheres": "where is",
    "whens": "when is",
    "pkg": "package",
    "pckg": "package",
    "pkge": "package",
    "parcl": "parcel",
    "k": "ok",
    "kk": "ok",
    "okay": "ok",
    "okey": "ok",
    "oki": "ok",
    "okie": "ok",
    "yea": "yes",
    "yeah": "yes",
    "yep": "yes",
    "wil": "will",
    "ill": "i will",
    "id": "i would",
    "ive": "i have",
    "youre": "you are",
    "thats": "that is",
    "whats": "what is",
    "yup": "yes",
    "yess": "yes",
    "ye": "yes",
    "yah": "yes",
    "nah": "no",
    "nope": "no",
    "cya": "bye",
    "bb": "bye",
    "byee": "bye",
    "gtg": "bye",
    "ttyl": "bye",
    "hru": "hi",
    "hiya": "hi",
    "neighbor": "neighbour",
    "neighbors": "neighbour",
    "neighbours": "neighbour",
    "nxt": "next",
    "hr": "hour",
    "hrs": "hours",
    "mins": "minutes",
    "smth": "something",
    "sb": "someone",
    "sum1": "someone",
    "some1": "someone",
    "any1": "anyone",
    "ppl": "people",
    "dont": "do not",
    "cant": "can not",
    "cannot": "can not",
    "wont": "will not",
    "isnt": "is not",
    "didnt": "did not",
    "doesnt": "does not",
    "wasnt": "was not",
    "arent": "are not",
    "werent": "were not",
    "wouldnt": "would not",
    "couldnt": "could not",
    "shouldnt": "should not",
    "hasnt": "has not",
    "havent": "have not",
    "aint": "not",
    "gonna": "going to",
    "wanna": "want to",
    "gotta": "have to",
    "n": "and",
    "w": "with",
    "tho": "though",
    "bc": "because",
    "cuz": "because",
    "coz": "because",
    "asap": "as soon as possible",
    "bday": "birthday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "sat": "saturday",
    "sun": "sunday",
    "noonish": "around noon",
    "oclock": "o clock",
    "setup": "set up",
    "pickup": "pick up",
    "lemme": "let me",
    # French (Québec)
    "dmain": "demain",
    "dem1": "demain",
    "2main": "demain",
    "dman": "demain",
    "demin": "demain",
    "stp": "s il te plait",
    "svp": "s il vous plait",
    "sil": "s il",
    "plait": "plait",
    "pk": "pourquoi",
    "pq": "pourquoi",
    "qd": "quand",
    "qnd": "quand",
    "kan": "quand",
    "kand": "quand",
    "c": "c est",
    "jsuis": "je suis",
    "chui": "je suis",
    "chu": "je suis",
    "jss": "je suis",
    "jsp": "je sais pas",
    "ajd": "aujourd hui",
    "auj": "aujourd hui",
    "ajrd": "aujourd hui",
    "aujourdhui": "aujourd hui",
    "slt": "salut",
    "bjr": "bonjour",
    "bsr": "bonsoir",
    "mrc": "merci",
    "mci": "merci",
    "mrci": "merci",
    "bcp": "beaucoup",
    "dac": "d accord",
    "dak": "d accord",
    "dacc": "d accord",
    "daccord": "d accord",
    "ouais": "oui",
    "ouaip": "oui",
    "wi": "oui",
    "oui": "oui",
    "nn": "non",
    "pcq": "parce que",
    "mtn": "maintenant",
    "vs": "vous",
    "ds": "dans",
    "ki": "qui",
    "koi": "quoi",
    "tt": "tout",
    "ptet": "peut etre",
    "pe": "peut etre",
    "rdv": "rendez vous",
    "aprem": "apresmidi",
    "apm": "apresmidi",
    "am": "am",
    "pm": "pm",
    "bne": "bonne",
    "bonne": "bonne",
    "jour": "jour",
    "lun": "lundi",
    "mer": "mercredi",
    "jeu": "jeudi",
    "ven": "vendredi",
    "dim": "dimanche",
    "apres-midi": "apres midi",
    "weekend": "week end",
    "fds": "fin de semaine",
    "qqn": "quelqu un",
    "qq1": "quelqu un",
    "qlq": "quelqu un",
    "quelquun": "quelqu un",
    "jveux": "je veux",
    "jpeux": "je peux",
    "tsé": "tu sais",
    "pis": "puis",
    "faque": "donc",
    "tantot": "tantot",
    # Spanish
    "xq": "porque",
    "porq": "porque",
    "q": "que",
    "ke": "que",
    "k1": "que",
    "mñn": "manana",
    "mnn": "manana",
    "mna": "manana",
    "mñna": "manana",
    "mnana": "manana",
    "tb": "tambien",
    "tmb": "tambien",
    "xfa": "por favor",
    "xfavor": "por favor",
    "porfa": "por favor",
    "porfis": "por favor",
    "pf": "por favor",
    "pfv": "por favor",
    "grax": "gracias",
    "grx": "gracias",
    "grcs": "gracias",
    "grs": "gracias",
    "grasias": "gracias",
    "dnd": "donde",
    "dnde": "donde",
    "cdo": "cuando",
    "cnd": "cuando",
    "kndo": "cuando",
    "cuand": "cuando",
    "toy": "estoy",
    "x": "por",
    "hla": "hola",
    "ola": "hola",
    "bn": "bien",
    "ntp": "no te preocupes",
    "sip": "si",
    "nop": "no",
    "xa": "para",
    "pa": "para",
    "mie": "miercoles",
    "jue": "jueves",
    "vie": "viernes",
    "sab": "sabado",
    "finde": "fin de semana",
    "vdd": "verdad",
    "tmbn": "tambien",
    "tqm": "gracias",
    "sta": "esta",
    "stoy": "estoy",
    "nos vemos": "nos vemos",
    "chao": "chau",
    "ciao": "chau",
    "adio": "adios",
}

# Words that, written alone in a message, belong to one language only.
LANGUAGE_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        """the my is where when what whats tomorrow today tonight please thanks thank you your it i can
        could would will after before between and at on of to for not home leave door package parcel
        morning afternoon evening yes hi hello hey bye goodbye with neighbour next this deliver delivery
        come coming want need time day talk speak person someone pick up instead be are was there
        how much longer sounds good days nope cancel in if get driver guys stuff grab thx ty see
        here just sorry weekend week noon midnight monday tuesday wednesday thursday friday saturday
        sunday around until by o clock english spanish french do does did have has get got set install
        where's works any anytime better prefer rather it's its our we they he she him her lobby
        buzzer gate code porch garage front back side agent human people help cheers great awesome
        perfect cool sure nope yeah thx nah yep okay arrive arriving arrived ring knock call still
        track tracking status late first second third one two three four five book relay pickup
        installation correct super point"""
    ),
    "fr_CA": _words(
        """le les mon ma mes est ou quand demain aujourd hui merci apres je j tu vous svp stp colis
        livraison livrer livreur matin soir soiree midi oui non bonjour bonsoir salut voisin voisine
        porte avec chez pas plus dans pour et du des une ce cet cette lundi mardi mercredi jeudi vendredi
        samedi dimanche prochain prochaine semaine parler quelqu personne heure heures peux pouvez suis
        serai absent travail bonne journee moi c qui quoi ca ouais allo d accord correct ben puis
        avant-midi plait nous veux voudrais aimerais peut etre mais alors donc sonnette interphone
        cueillette casier point relais francais anglais espagnol hein suivi chemin rendu avantmidi
        ai besoin euh mieux irait expediee
        apresmidi clientele merci mrc installation montage installer laisser
        laissez deposer boite lettres au aux sur sous derriere devant encore toujours recu arrive
        arriver changer modifier reporter deplacer heure quelle combien temps premier premiere deuxieme
        troisieme gants blancs parfait super genial fin semaine jusqu entre-temps aussi bureau poste
        depanneur magasin galerie balcon perron chien sonner cogner code bon matinee minuit"""
    ),
    "es": _words(
        """el mi mis esta estoy donde cuando manana hoy gracias despues yo por favor paquete pedido
        entrega entregar entreguen tarde noche hola buenos buenas dias vecino vecina puerta con del los
        las una es lunes martes miercoles jueves viernes sabado domingo proximo proxima semana hablar
        alguien persona hora horas puede pueden puedo quiero necesito casa trabajo mejor vale claro ya
        y llega llegar llegara viene vienen mediodia medianoche dejar dejen dejalo timbre codigo portero
        conserje buzon recoger recogerlo sucursal tienda instalacion instalar armar montar ingles
        espanol frances adios luego chau nada muchas muy primero primera segundo segunda tercero
        tercera opcion todavia aun cambiar reprogramar otro otra dia favor perfecto genial sí pero
        entonces tambien ahora desde hasta antes cuanto falta rastreo seguimiento estado
        porton garaje perro tocar numero nadie quien este servicio cliente dale nop vemos quedo acuerdo
        jajaja jaja hablo hablas quisiera saber envio ese esa eso ayudan dejen
        caseta vigilancia asesor quiero sirve instalen"""
    ),
}

# Whole-message carrier keywords (checked on the folded message without punctuation).
STOP_WORDS = frozenset(
    {"stop", "arret", "unsubscribe", "cancel", "end", "quit", "stopall", "revoke", "optout", "opt out"}
)
START_WORDS = frozenset({"start", "unstop"})
HELP_WORDS = frozenset({"help", "aide", "ayuda", "info"})

LANGUAGE_NAMES: dict[str, str] = {
    "english": "en",
    "anglais": "en",
    "ingles": "en",
    "anglai": "en",
    "french": "fr_CA",
    "francais": "fr_CA",
    "frances": "fr_CA",
    "francaise": "fr_CA",
    "spanish": "es",
    "espanol": "es",
    "espagnol": "es",
    "castellano": "es",
}


def _w(pattern: str) -> str:
    return r"(?<![a-z0-9])(?:" + pattern + r")(?![a-z0-9])"


ANY_OPTION = (
    r"any|any one|anyone|any of them|anytime|any time|whichever|whichever one|either|either one"
    # "n'importe" reaches here as "and importe" (the shorthand "n" is "and")
    r"|doesn t matter|does not matter|no preference|(?:n|and) importe(?: lequel| laquelle| quand)?"
    r"|peu importe|ca m est egal|pas de preference"
    r"|cualquiera|cualquier (?:uno|una|hora)|me da igual|da igual|sin preferencia|no tengo preferencia"
)
# ... said as the whole message (a question with "any" in it is no choice)
ANY_OPTION_ALONE = r"^ *(?:" + ANY_OPTION + r")(?: [!.,]+)? *$"


# Intent cues: (intent, weight, pattern). Scores add up; the highest wins (ties go to the earlier intent
# in INTENT_ORDER).
INTENT_CUES: list[tuple[str, float, str]] = [
    # where is my parcel / when is it coming
    ("where_is_parcel", 3, r"where (?:is|are|s)\b|where .{0,20}(?:parcel|package|order|delivery|stuff|box)"),
    (
        "where_is_parcel",
        3,
        r"when (?:is|will|does|do|are|would|should|can i expect)|what time (?:is|will|does|are)",
    ),
    (
        "where_is_parcel",
        3,
        r"(?:is|are) (?:it|they|my \w+|the \w+) (?:still )?(?:coming|arriving|on (?:its|the) way|"
        r"out for delivery)",
    ),
    (
        "where_is_parcel",
        3,
        r"eta|tracking|track (?:it|my|the)|status|how long|how much longer|any (?:news|update)s?|update on",
    ),
    (
        "where_is_parcel",
        2,
        r"(?:has not|did not|never|not yet|still not|still have not|have not) (?:\w+ )?(?:arrived|come|"
        r"came|got|received|get|shown up)",
    ),
    (
        "where_is_parcel",
        2,
        r"still waiting|waiting for (?:my|the)|where my|expected|on its way|arrive today|emojiparcel|"
        r"emojitruck",
    ),
    ("where_is_parcel", 3, r"ou (?:est|sont|en est|il est|elle est)|c est ou|ou se trouve"),
    (
        "where_is_parcel",
        3,
        r"quand (?:est ce que|est ce qu|arrive|va|vais|vas|vont|le|la|mon|ma|mes|il|elle|ca|recevoir|est)",
    ),
    (
        "where_is_parcel",
        3,
        r"a quelle heure|quelle heure|suivi|statut|combien de temps|des nouvelles|ca arrive|il arrive|"
        r"arrive quand|arrive tu|arrive t il|s en vient",
    ),
    (
        "where_is_parcel",
        2,
        r"(?:toujours|encore|jamais) (?:pas )?(?:recu|arrive|livre)|pas (?:encore |toujours )?(?:recu|"
        r"arrive|livre)|attends (?:mon|ma|le|la|toujours)",
    ),
    (
        "where_is_parcel",
        3,
        r"donde (?:esta|estan|anda|va|viene)|cuando (?:llega|llegan|llegara|viene|vienen|me llega|"
        r"lo traen|entregan|sera|va a llegar|me lo|me la|van a)",
    ),
    (
        "where_is_parcel",
        3,
        r"a que hora|que hora|rastreo|rastrear|seguimiento|estado de|cuanto falta|cuanto tiempo|ya viene|"
        r"ya salio|ya va|hay noticias|en camino",
    ),
    (
        "where_is_parcel",
        2,
        r"no (?:me )?(?:ha|han) (?:llegado|entregado)|todavia no|aun no|sigo esperando|nunca llego|no llego",
    ),
    (
        "where_is_parcel",
        2,
        r"(?:llega|llegan|llegara|viene|vienen|arrive|arrivera|arrives|coming|arriving|come|passe|"
        r"passera) (?:\w+ )?"
        r"(?:hoy|manana|aujourd hui|demain|today|tomorrow|ce matin|cet apresmidi)",
    ),
    (
        "where_is_parcel",
        3,
        r"en chemin|en route|rendu ou|est rendu|c est rendu|est (?:tu|il) en (?:chemin|route)",
    ),
    # reschedule
    (
        "reschedule",
        3,
        r"reschedule|rebook|re schedule|postpone|(?:another|different|other|new) (?:\w+ )?(?:day|time|"
        r"date)|change (?:the |my )?(?:day|date|time|delivery|window|slot)|move (?:it|the delivery|"
        r"my delivery|delivery)",
    ),
    (
        "reschedule",
        2,
        r"instead|rather|prefer|works better|better for me|suits me|can (?:you|u|they|it|he|she|"
        r"the driver) (?:come|deliver|bring|drop|do|arrive)|could (?:you|they|it|the driver) (?:come|"
        r"deliver|bring|drop|do|arrive)|deliver (?:it )?(?:on|tomorrow|today|monday|tuesday|wednesday|"
        r"thursday|friday|saturday|sunday|after|before|between|in the)|come (?:back|on|after|before|"
        r"between|tomorrow|later)|bring it",
    ),
    (
        "reschedule",
        2,
        r"(?:not|be not|will not be|am not|wont be) (?:be )?(?:home|there|around|in|available)|at work|"
        r"i am out|away|not available|busy|i work|working"
        r"|(?:nobody|no one|noone|no ones) (?:will be |is |s |going to be )?(?:home|there|in)"
        r"|if i miss (?:the |my )?(?:delivery|driver|it)",
    ),
    ("reschedule", 1, r"later|earlier|available|free|works for me|ok for me|fine for me|good for me"),
    (
        "reschedule",
        3,
        r"changer (?:la|le|de|l)|modifier|reporter|deplacer|decaler|remettre|autre (?:jour|moment|heure|"
        r"date|journee)|une autre|reprogrammer|reprendre rendez",
    ),
    (
        "reschedule",
        2,
        r"plutot|prefere|preferais|prefererais|livrez|livrer (?:le|la|demain|lundi|mardi|mercredi|jeudi|"
        r"vendredi|samedi|dimanche|apres|avant|entre|plus|ce)|passer (?:demain|apres|avant|entre|plus|le|"
        r"lundi|mardi|mercredi|jeudi|vendredi|samedi)|venir (?:demain|apres|avant|entre|plus|le|lundi|"
        r"mardi|mercredi|jeudi|vendredi|samedi)|pouvez vous (?:venir|passer|livrer)|possible (?:de|d)|"
        r"ca m arrange|m arrangerait|serait mieux|est ce possible",
    ),
    (
        "reschedule",
        2,
        r"(?:pas|serai pas|suis pas|serais pas|ne serai pas) (?:la|chez nous|chez moi|a la maison|"
        r"disponible|dispo)|absent|absente|au travail|au boulot|a la job|pas dispo"
        r"|personne (?:ne sera|ne va etre|n est|n y a|n y sera)",
    ),
    ("reschedule", 1, r"plus tard|plus tot|disponible|dispo|libre"),
    (
        "reschedule",
        3,
        r"cambiar|reprogramar|programar|posponer|aplazar|mover|otro dia|otra hora|otra fecha|otro horario|"
        r"cambio de",
    ),
    (
        "reschedule",
        2,
        r"mejor(?! no)|prefiero|preferiria|me conviene|pueden (?:venir|pasar|traer|entregar)|puede (?:venir|"
        r"pasar|traer|entregar)|podrian|traiganlo|traerlo|entreguen|entregar (?:el|la|manana|hoy|despues|"
        r"antes|entre)|vengan|venir (?:el|la|manana|despues|antes|entre)|en vez|en lugar",
    ),
    (
        "reschedule",
        2,
        r"no (?:voy a estar|estare|estoy|estaremos|hay nadie|puedo)|estoy en el trabajo|trabajo|"
        r"fuera de casa|salgo",
    ),
    ("reschedule", 1, r"mas tarde|mas temprano|disponible|libre"),
    # redirect to a pickup point
    (
        "redirect_pickup",
        4,
        r"pick ?up point|pickup location|pick (?:it|them|the package|the parcel|my package|my parcel) up|"
        r"pick up (?:it|myself|my|the)|collect (?:it|myself|my|the)|locker|lockers|relay point|"
        r"post office|depot|redirect|pick up location|go get it|get it myself",
    ),
    ("redirect_pickup", 2, r"(?:the|a|nearest|closest) (?:store|shop|counter|pharmacy|convenience store)"),
    (
        "redirect_pickup",
        4,
        r"point (?:relais|de cueillette|de collecte|de retrait|de ramassage)|casier|casiers|comptoir|"
        r"bureau de poste|depanneur|ramasser|recuperer|aller (?:le |la |les )?chercher|cueillir|"
        r"passer (?:le |la )?prendre|rediriger|je vais (?:le |la )?chercher",
    ),
    (
        "redirect_pickup",
        4,
        r"punto de (?:recogida|entrega|retiro)|recoger|recogerlo|recogerla|buscarlo|ir a buscar|"
        r"paso a buscar|casillero|sucursal|oficina de correos|retirar|redirigir|lo busco",
    ),
    # white-glove setup
    (
        "white_glove",
        4,
        r"white glove|set (?:it )?up|setup|install|installation|installed|assemble|assembly|assembled|"
        r"mount|mounting|put (?:it )?together|hook (?:it )?up|unbox|build it",
    ),
    (
        "white_glove",
        4,
        r"gants blancs|installer|installe|installation|montage|monter|assembler|assemblage|brancher|"
        r"mise en place",
    ),
    (
        "white_glove",
        4,
        r"guante blanco|instalacion|instalar|instalen|instalarlo|armar|armado|armarlo|montar|montaje|"
        r"ensamblar|ensamblaje",
    ),
    # delivery instructions
    (
        "instructions",
        4,
        r"(?:add|write|leave|send|give) (?:a |an |some )?(?:note|instructions?|message) (?:for|to) "
        r"(?:the |my )?(?:driver|courier|delivery)|note for the (?:driver|courier)|"
        r"(?:delivery|driver) instructions|"
        r"(?:ajouter|laisser|ecrire|donner) (?:une |des )?(?:note|instructions?|consignes?)|"
        r"note (?:pour|au) (?:le )?livreur|(?:dejar|agregar|anadir|escribir|dar) (?:una |unas )?"
        r"(?:nota|instrucciones|instruccion)|nota (?:para|al) (?:el )?repartidor",
    ),
    (
        "instructions",
        3,
        # "leave it as it is" keeps things as they are (a "no" below), it is not a note
        r"leave (?:it|them|the \w+|my \w+|package|parcel)?"
        r"(?! (?:as (?:is|it is)|like (?:that|it is)|the same))"
        r"|drop (?:it|them) (?:off )?(?:at|by|on|in|with|"
        r"behind|inside|outside)|put (?:it|them) (?:at|by|on|in|behind|inside|under)",
    ),
    (
        "instructions",
        2,
        r"(?:code|codigo|buzzer|buzz|interphone|intercom) (?:\w+ ){0,3}\d+|(?:floor|etage|piso) \d+|"
        r"\d+(?:st|nd|rd|th|e|eme|er)? (?:floor|etage)|(?:front|back|side|garage|main) door|at the door|"
        r"porch|mailbox|mail room|mailroom|neighbour|concierge|front desk|reception|doorman|buzzer|buzz|"
        r"gate code|door code|the code|code is|intercom|ring the bell|do not ring|dont ring|knock|"
        r"safe place|behind the|lobby|garage|shed|balcony|side gate|gate|dog|apt|apartment|unit|building",
    ),
    ("instructions", 3, r"(?:laisser|laissez|laisse[rz]? le)(?! ca comme)|deposer|deposez|depose"),
    (
        "instructions",
        2,
        r"(?:a|devant) la porte|porte (?:d en arriere|arriere|de cote|avant|principale)|perron|galerie|"
        r"balcon|voisin|voisine|concierge|reception|sonnette|sonnez|sonner|cogner|cognez|interphone|"
        r"boite aux lettres|boite postale|code (?:de la porte|d acces|d entree|du portail|est|porte|"
        r"c est)|le code|portail|barriere|chien|garage|cabanon|dans le hall|hall d entree",
    ),
    (
        "instructions",
        3,
        r"(?:dejar|dejen|dejarlo|dejalo|dejelo|dejenlo|dejarla|dejenla|deje)(?! (?:asi|como esta))",
    ),
    (
        "instructions",
        2,
        r"(?:en|a) la puerta|puerta (?:de atras|trasera|principal|de al lado)|porche|porton|vecino|vecina|"
        r"conserje|portero|recepcion|timbre|toquen|tocar|no toquen|buzon|codigo (?:de|del|es|para|porton)|"
        r"el codigo|garaje|perro|patio|cochera|edificio|departamento|apartamento",
    ),
    # a person
    (
        "human",
        4,
        r"(?:talk|speak|chat) (?:to|with) (?:a|an|someone|somebody|a real|real|the|your|customer)|"
        r"(?:someone|somebody|anyone|person) (?:i can |to |we can )?(?:talk|speak|chat)|real person|human|"
        r"humans|agent|agents|an agent|a person|representative|customer service|operator|call me|phone me|"
        r"someone (?:real|on the phone)|live agent|manager|not a bot|stupid bot|useless bot|"
        r"you are useless|this is useless",
    ),
    (
        "human",
        4,
        r"parler (?:a|avec) (?:quelqu|un|une|qqn|le|la|votre|vrai|vraie)|un humain|une vraie personne|"
        r"vrai humain|une personne|un agent|un representant|service (?:a la )?client|"
        r"service (?:a la )?clientele|quelqu un a qui parler|humain|appelez moi|appelle moi|telephoner|"
        r"au telephone|un preposee?|pas un robot|robot",
    ),
    (
        "human",
        4,
        r"hablar con (?:alguien|una|un|el|la|su|persona|humano)|alguien con quien hablar|humano|"
        r"una persona|un humano|persona real|agente|representante|atencion al cliente|servicio al cliente|"
        r"llamame|llamenme|operador|operadora|no eres util",
    ),
    # yes / no
    (
        "yes",
        2,
        r"yes|ok|emojiyes|sure|correct|right|confirm|confirmed|sounds good|all good|that works|"
        r"works for me|perfect|great|awesome|fine|cool|alright|all right|absolutely|definitely|of course|"
        r"please do|go ahead|do it|good for me|looks good",
    ),
    (
        "yes",
        2,
        r"oui|d accord|parfait|correct|c est correct|ca marche|ca me va|bien sur|certainement|"
        # "ça va" agrees; "ça va être livré par qui?" asks
        r"ca va(?! etre| arriver| venir| prendre| couter| faire| livrer)|"
        r"exactement|confirme|super|genial|entendu|let s go|parfaitement|tres bien|c est bon|bon|vas y|"
        # "go!" agrees; the English verb in "where do I go to get it" does not
        r"(?<! i )(?<! we )(?<! to )go(?! to )|"
        r"allez y",
    ),
    (
        "yes",
        2,
        # "sí", "sí, por favor" agree; the "si" of "¿y si llueve?", "si no estoy" is an "if"
        r"(?<!\by )(?<!\bet )(?<!\bque )(?<!\bpero )si(?= *$| *[,!.]| (?:por favor|porfa|claro|gracias|"
        r"esta bien|perfecto|dale|vale|de acuerdo|confirmo|correcto|exacto|listo|bueno|seguro|adelante|"
        r"me parece|senor|senora)(?![a-z0-9]))|"
        r"claro|vale|de acuerdo|perfecto|correcto|exacto|confirmo|por supuesto|esta bien|"
        r"me parece bien|bueno|dale|listo|sale|genial|excelente"
        # "va" alone agrees; inside "ça va être livré" it does not
        r"|^ *va(?: [!.,]+)? *$",
    ),
    (
        "no",
        2,
        r"no|emojino|not really|never mind|nevermind|negative|dont|do not|no way|no thanks|not now|wrong|"
        r"incorrect|neither|none",
    ),
    (
        "no",
        2,
        r"non|pas vraiment|pas maintenant|laisse faire|laissez faire|jamais|aucun|aucune|pas ca|"
        r"pas correct|ni l un ni l autre|non merci",
    ),
    ("no", 2, r"no gracias|para nada|ninguno|ninguna|ni uno|tampoco|nel|nada"),
    # options
    (
        "choose_option",
        4,
        r"option (?:\d{1,2})|opcion (?:\d{1,2})|choix (?:\d{1,2})|number (?:\d{1,2})|numero (?:\d{1,2})|"
        r"no (?:\d{1,2})|# ?\d{1,2}",
    ),
    (
        "choose_option",
        3,
        r"(?:the |le |la |el |)(?:first|second|third|fourth|fifth|last|1st|2nd|3rd|4th|5th|premier|"
        r"premiere|1er|1re|deuxieme|2e|2eme|second|seconde|troisieme|3e|3eme|quatrieme|cinquieme|dernier|"
        r"derniere|primero|primera|primer|segundo|segunda|tercero|tercera|tercer|cuarto|cuarta|quinto|"
        r"quinta|ultimo|ultima) (?:one|option|choice|slot|window|time|choix|creneau|plage|opcion|horario|"
        r"uno|una)",
    ),
    # "any of them", said alone to a list of choices: the first one (it is then confirmed as usual)
    ("choose_option", 4, ANY_OPTION_ALONE),
    # language
    (
        "change_language",
        4,
        r"(?:in|speak|speaking|talk|write|switch to|prefer|do you speak|can you speak|en|parle|parlez|"
        r"parles|ecrire|ecrivez|hablar|hablas|habla|hablan|hablame|escribe|escribir|escribeme|cambiar a|"
        r"cambia a|passer en|passez en) (?:english|french|spanish|francais|anglais|espagnol|espanol|"
        r"ingles|frances|castellano)",
    ),
    (
        "change_language",
        3,
        r"(?:english|french|spanish|francais|anglais|espagnol|espanol|ingles|frances|"
        r"castellano) (?:please|s il vous plait|s il te plait|por favor|pls|svp|stp)?|language|langue|"
        r"idioma",
    ),
    # thanks, goodbye, greeting
    (
        "thanks",
        3,
        r"thanks|emojithanks|thank you|thank u|cheers|appreciate|much appreciated|merci|mille mercis|"
        r"je vous remercie|gracias|mil gracias|te lo agradezco|se lo agradezco|agradecido|agradecida",
    ),
    (
        "goodbye",
        3,
        r"bye|goodbye|good bye|see you|see ya|have a (?:good|nice|great) (?:day|night|evening|one|weekend|"
        r"week end)|take care|later|au revoir|bonne (?:journee|soiree|nuit|fin de semaine)|a plus|a \+|"
        r"@ \+|a la prochaine|bye bye|ciao|chau|adios|hasta luego|hasta pronto|hasta manana|nos vemos|"
        r"buen dia|que tengas",
    ),
    (
        "greeting",
        2,
        r"hi|emojihi|hello|hey|good morning|good afternoon|good evening|bonjour|bonsoir|allo|salut|coucou|"
        r"bon matin|hola|buenos dias|buenas tardes|buenas noches|buenas|que tal",
    ),
]

# Further cues, one family per entry, written as recipients' own phrasings turned up.
INTENT_CUES += [
    (
        "where_is_parcel",
        3,
        r"when\b.{0,40}\b(?:delivered|deliver|arrive|arriving|come|coming|get here|be here|here|show up)"
        r"|any idea when|supposed to (?:get|arrive|come|be delivered|receive)|(?:shipped|dispatched|sent out)"
        r"|(?:truck|driver|courier|van) .{0,15}(?:close|near|nearby|far|away)",
    ),
    (
        "where_is_parcel",
        3,
        r"quand\b ?(?:\?|exactement|svp|s il vous plait)|livrez quand|livrer quand|passez quand|vient quand"
        r"|(?:est|sont) ou|ou (?:est |c est )?rendu|(?:expedie|expediee|envoye|envoyee|parti|partie)\b"
        r"|(?:camion|livreur) .{0,15}(?:proche|loin|bientot|arrive)|arrive bientot|bientot la",
    ),
    (
        "where_is_parcel",
        3,
        r"cuando\b ?(?:\w+ ){0,2}(?:llega|llegan|llegara|viene|vienen|entregan|entrega|traen|pasan|pasa)"
        r"|(?:enviaron|enviado|enviada|despacharon|despachado|salio)\b|esperando (?:el|mi|la|mis|los)"
        r"|por donde (?:viene|va|anda)|(?:camion|repartidor) .{0,15}(?:cerca|lejos)|llega pronto",
    ),
    (
        "where_is_parcel",
        2,
        r"waiting (?:for|on) (?:it|my|the)|j attends (?:mon|ma|mes|le|la|les|toujours|encore)|"
        r"attend (?:mon|ma)"
        r"|llevo (?:\w+ ){0,3}esperando|estoy esperando",
    ),
    (
        "human",
        4,
        r"quelqu un (?:a qui|avec qui|pour)|(?:someone|somebody|anyone|quelqu un|"
        r"alguien) .{0,20}(?:parler|hablar|talk|speak)"
        r"|comunican con|comunicarme con|comunicame con|comunicar con|ponganme con|pasenme con",
    ),
    ("white_glove", 4, r"armen|arme|armarla|armenlo|monten|montarlo|instale|instalenlo|installe|installent"),
    (
        "redirect_pickup",
        4,
        r"point de service|point de vente|hold it at|keep it at|hold (?:it|the package) for me",
    ),
]

INTENT_CUES += [
    (
        "where_is_parcel",
        3,
        r"(?:get|got|been|was|were|it) delivered|how far|livre \?|entregado \?|entregaron",
    ),
    ("white_glove", 4, r"put (?:\w+ ){0,3}together"),
    ("redirect_pickup", 4, r"recojo|recoge|lo recojo|en la tienda|a la tienda|al local|en el local"),
    (
        "choose_option",
        4,
        r"(?:option|opcion|choix|number|numero) (?:one|two|three|four|five|un|une|deux|trois|quatre|cinq"
        r"|uno|una|dos|tres|cuatro|cinco)",
    ),
]

INTENT_CUES += [
    (
        "reschedule",
        2,
        r"(?:pueden|puede|podrian|podria|pueda|puedan) (?:venir|pasar|traer|entregar|mandar|llevar)(?:lo|"
        r"la|los|las|me)?",
    ),
]

INTENT_CUES += [
    (
        "where_is_parcel",
        3,
        r"(?:says|shows|marked|marked as|show as|says it was) delivered|(?:do not|did not|never) (?:have|"
        r"get|got|receive)"
        r"|(?:indique|marque|dit) livre|dice (?:que )?entregado|aparece (?:como )?entregado",
    ),
    ("no", 3, r"mejor no|better not|plutot pas|plutot non|pas pour moi|nah"),
    # "forget it", "keep it as it is", "oublie ça", "olvídalo", "déjelo así": no change after all. Above
    # the note cues of "leave it" / "déjelo" (a note would read "as it is")
    (
        "no",
        5,
        r"forget (?:it|about it|that)|(?:keep|leave) it (?:as is|as it is|like that|the same|like it is)"
        r"|keep (?:the )?(?:same|original|current|planned) (?:time|window|day|one)"
        r"|oubli(?:e|ez) (?:ca|ca finalement)|(?:laisse|laissez|garde|gardez) (?:ca|le) comme (?:ca|c est)"
        r"|olvid(?:alo|elo|enlo|a eso)|(?:dejalo|dejelo|dejenlo) (?:asi|como esta)",
    ),
    ("yes", 2, r"c est beau|c est correct|c est ok|ca me va|esta bien|me sirve"),
]

INTENT_CUES += [
    (
        "reschedule",
        3,
        r"push (?:it |the delivery |my delivery |\w+ )?back|push back|later date|remettre (?:ca|"
        r"la livraison)",
    ),
    (
        "instructions",
        4,
        r"(?:doorbell|door bell|bell|buzzer|sonnette|timbre) (?:\w+ ){0,3}(?:work|working|broken|brise|brisee"
        r"|marche pas|sirve|funciona)|(?:call|text) (?:me )?when (?:you|u) (?:get|are|arrive)",
    ),
    (
        "where_is_parcel",
        3,
        r"(?:still |toujours |sigue )?(?:scheduled|prevue|prevu|programado|programada|prevista|previsto)"
        r"|cuanto tarda|tarda (?:en|mucho)|wondering if|je voulais savoir|queria saber|quisiera saber",
    ),
]

INTENT_CUES += [
    (
        "where_is_parcel",
        2,
        r"^ (?:is|will|are|does|did|est ce que|est ce qu|va|ya|sera) .{0,60}(?:package|parcel|order|"
        r"delivery|driver"
        r"|colis|commande|livraison|livreur|paquet|paquete|pedido|repartidor|entrega)"
        r"|make it (?:today|tomorrow|on time)|ya mero|ya casi|(?:llega|viene) mi",
    ),
    ("white_glove", 4, r"setting (?:it |them |\w+ )?up"),
    ("where_is_parcel", 3, r"rien (?:recu|eu)|nothing yet|no recibo|todavia nada|nada todavia|aun nada"),
    ("white_glove", 4, r"montent|montez|monte (?:le|la|les)|installent|installez|assemblent|assemblez"),
    (
        "human",
        4,
        r"(?:mettre|mettez|mets) (?:moi )?en contact|en contact avec|poner(?:me)? en contacto|ponerme con"
        r"|asesor|asesora|me llame|me llamen|rappelez moi|me rappeler|call me back|have someone call",
    ),
]

# What the bot cannot do itself goes to a person: complaints, cancelled orders, a wrong address, damage.
INTENT_CUES += [
    (
        "human",
        3,
        r"complain|complaint|cancel (?:my|the|this) (?:order|delivery|purchase)|wrong address|"
        r"change (?:my|the)"
        r" address|damaged|broken item|missing item|refund|plainte|annuler (?:ma|la|mon) (?:commande|"
        r"livraison)"
        r"|mauvaise adresse|changer (?:mon|l) adresse|endommage|remboursement|queja|reclamo|"
        r"cancelar (?:mi|el|la)"
        r" (?:pedido|entrega|orden)|direccion (?:equivocada|incorrecta)|cambiar (?:mi|la) direccion|"
        r"danado|reembolso",
    ),
]

# Calling off a booked in-home setup: it must outweigh the setup cues its words also match
# ("installation" is in two languages' lists, 4 each), which would offer slots instead.
SETUP_WORDS = (
    r"(?:in home )?(?:set up|setup|installation|install|assembly|montage|instalacion|armado|montaje)"
)
INTENT_CUES += [
    (
        "cancel_white_glove",
        10,
        r"(?:cancel\w*|remove|skip|drop|do not (?:need|want)|no longer (?:need|want)|without|annul\w*"
        r"|enlev\w*|retir\w*|pas besoin|plus besoin|sans|quit\w*|(?:ya )?no (?:necesito|quiero)|sin)"
        rf" (?:(?:the|my|our|this|any|an|de|d|du|l|la|le|el) )*{SETUP_WORDS}",
    ),
]

# "Let me know when the driver is close": the reply says when the arriving message goes. It must
# outweigh "when ... arrive" (where is my parcel, 3) and "can you ... come" (reschedule, 2).
INTENT_CUES += [
    (
        "notify_me",
        6,
        r"(?:let me know|notify me|text me|message me|warn me|alert me"
        r"|give me a heads up|send me (?:a )?(?:text|message|notification|sms))"
        r" (?:\w+ ){0,4}(?:when|before|once|if)"
        r"|(?:get|receive) (?:a )?(?:text|message|notification|sms|heads up)"
        r" (?:\w+ ){0,4}(?:when|before|once)"
        r"|(?:previen|prevenez|avertissez|avisez|texte|textez|ecrivez) (?:moi|nous)"
        r" (?:\w+ ){0,3}(?:quand|avant|lorsque)"
        r"|me (?:prevenir|texter|avertir|aviser|ecrire) (?:\w+ ){0,3}(?:quand|avant|lorsque)"
        r"|(?:avisa|avise|avisen|avisenme|aviseme|avisame|escribanme|escribame)"
        r" (?:\w+ ){0,3}(?:cuando|antes)"
        r"|me (?:pueden|puede|podrian|podria|van a|va a) (?:avisar|escribir|mandar)"
        r" (?:\w+ ){0,4}(?:cuando|antes)",
    ),
]

# The parcel to the door after all, not to a pickup point ("deliver it home instead", "livrez-le chez
# moi", "entréguenlo en mi casa", "I don't want the pickup point any more"): a time at the door. It
# outweighs the point's own words (redirect_pickup, 4) and leaves "my new address" to a person.
HOME_DELIVERY = (
    r"(?:deliver|bring|send|ship)"
    r"(?: it| them| the (?:parcel|package|order|box)| my (?:parcel|package|order))?"
    r"(?: back)? (?:to (?:my|our|the) (?:home|house|place|door|address|apartment|condo)|(?:to |at )?home)"
    r"|home delivery|delivered (?:home|(?:to|at) (?:my |our |the )?(?:home|house|place|door|address))"
    r"|(?:do not|dont|no longer) (?:want|need) (?:the |a |to go to the |to use the )?"
    r"(?:pick ?up|relay|locker)"
    r"|cancel (?:the |my )?(?:pick ?up|redirect\w*|relay|locker)"
    r"|(?:livr\w*|apport\w*|envoy\w*|ramen\w*)(?: le| la| les| mon colis| le colis)?"
    r" (?:a domicile|chez (?:moi|nous)|a la maison|a mon adresse|a ma porte)"
    r"|livraison a domicile"
    r"|(?:annul\w*|plus besoin (?:du|de)|veux plus (?:du|le)|veux pas (?:du|le)|pas besoin (?:du|de))"
    r" (?:le )?point (?:relais|de retrait|de cueillette|de collecte|de ramassage)"
    r"|(?:entreg\w*|llev\w*|traig\w*|mand\w*|envi\w*)(?: lo| la)? (?:a|en) (?:mi |la )?(?:casa|domicilio)"
    r"|a domicilio"
    r"|(?:cancel\w*|ya no quiero|no quiero|no necesito) (?:el )?punto de (?:recogida|entrega|retiro)"
)
INTENT_CUES += [("reschedule", 5, HOME_DELIVERY)]

# "Do I have to be home?": the reply gives every way round being there (bot/understanding/when.py
# counts it as an absence, so the message sets `away`).
MUST_BE_THERE = (
    r"(?:do|will|would) (?:i|we) (?:have|need) to be (?:home|there|in|around|present)"
    r"|(?:have|need) to be (?:home|there) for (?:it|the delivery)|must (?:i|we) be (?:home|there)"
    r"|(?:dois je|est ce que je dois|faut il|faut tu|est ce qu il faut|il faut) (?:que je sois |etre )?"
    r"(?:la|a la maison|chez moi|present|presente)"
    r"|(?:tengo|tenemos|hay) que estar (?:en casa|ahi|presente|alli)"
)
INTENT_CUES += [("reschedule", 2, MUST_BE_THERE)]  # below 3: not asking for another time

# Another time than the one planned, in a direction: "can you come earlier?", "plus tard", "más temprano".
SOONER = r"earlier|sooner|before that|plus tot|plus de bonne heure|mas temprano|mas pronto|antes de eso"
LATER = r"later|after that|plus tard|mas tarde|despues de eso"

# Asking to choose the time ("can I pick the exact time?"): the reply lists the times on offer.
INTENT_CUES += [
    (
        "reschedule",
        3,
        r"(?:choose|pick|select|set) (?:the |a |my |an )?(?:exact |specific |delivery )?"
        r"(?:time|hour|window|slot)"
        r"|(?:choisir|selectionner) (?:l |une |mon |le )?(?:heure|moment|creneau|plage)"
        r"|(?:elegir|escoger|seleccionar) (?:la |una |el |un )?(?:hora|horario)",
    ),
]

# Asking whether the driver calls first is asking when we write: the notify_me answer. "Call me when
# you arrive" (a request, not a question) stays a person's.
INTENT_CUES += [
    (
        "notify_me",
        6,
        r"(?:does|do|will|would|is|are) (?:the driver|the courier|he|she|they|you|someone|anyone)"
        r"(?: going to)? (?:call|text|phone|ring|contact|warn)"
        r"|(?:le livreur|il|elle|vous|quelqu un) (?:va (?:t il |t elle )?)?(?:m |nous )?"
        r"(?:appel\w*|telephon\w*|text\w*|previen\w*) (?:\w+ )?avant"
        r"|(?:el repartidor|me|nos) (?:\w+ ){0,2}(?:llama|llamara|llamar|llaman|llamaran|avisa|avisan) antes",
    ),
]

# Opening hours of the pickup point it is going to: the status reply gives them.
INTENT_CUES += [
    (
        "where_is_parcel",
        3,
        r"opening hours|open hours|store hours|when (?:is|are) (?:it|they|the \w+) open"
        r"|what are (?:the|their|its) (?:opening )?hours(?: there| of the \w+)?(?= [?.!]*\s*$)"
        r"|quelles sont (?:les|leurs|ses) heures|c est ouvert (?:quand|jusqu a quand)"
        r"|(?:que|cual es el) horario(?: tiene| tienen)?(?= [?.!]*\s*$)|cuales son los horarios"
        r"|what time (?:does|do) (?:it|they|the \w+) (?:open|close)|heures d ouverture|ouvert jusqu"
        r"|horario de (?:atencion|apertura)|a que hora (?:abre|cierra)n?",
    ),
]

# Questions only the retailer's team can answer: what is in the parcel, its weight or size, who the
# driver is and how to reach them, what the setup costs. A person's; the setup's price outweighs the
# setup's own words (white_glove, 4 per language list), which would offer slots instead of a price.
ABOUT_THE_ORDER = (
    r"what is (?:in|inside) (?:the|my|this|it)|what is inside|what did (?:i|we) (?:order|buy)"
    r"|contents? of (?:the|my) (?:parcel|package|box|order)"
    r"|how (?:heavy|big|large) is (?:it|the (?:parcel|package|box|order)|my (?:parcel|package|box|order))"
    r"|how much (?:does|will) (?:it|the \w+|my \w+) weigh|(?:weight|size|dimensions) of (?:the|my)"
    r"|who (?:is|will be) (?:the|my) (?:driver|courier|delivery (?:guy|person|man|driver))"
    r"|whose the driver|(?:who is|whose) (?:delivering|bringing)"
    r"|(?:driver|courier)s? (?:name|phone|number|cell)"
    r"|(?:call|phone|text|contact|reach) the (?:driver|courier)"
    r"|qu est ce qu il y a dans|c est quoi dans|qu est ce que j ai commande|contenu (?:du|de mon) colis"
    r"|combien (?:pese|ca pese)|poids du colis|quelle (?:taille|grandeur) (?:fait|a)|dimensions du colis"
    r"|qui (?:est|sera) (?:le|mon) livreur|qui (?:livre|va livrer)|(?:nom|numero|telephone) du livreur"
    r"|(?:appeler|joindre|contacter|rejoindre) le livreur"
    r"|que (?:hay|viene) (?:en|dentro de) (?:el|la|mi) (?:paquete|caja|pedido)"
    r"|que contiene|que (?:pedi|compre)"
    r"|contenido del paquete|cuanto pesa|peso del paquete|que tamano tiene|dimensiones del paquete"
    r"|quien es el repartidor|quien (?:entrega|me lo entrega|lo entrega)"
    r"|(?:nombre|numero|telefono) del repartidor"
    r"|(?:llamar|contactar) al repartidor"
)
SETUP_PRICE = (
    r"how much (?:does|is|will|would) (?:the |an |a |my )?(?:in home )?(?:set up|setup|installation|assembly)"
    r" (?:cost|be)|(?:price|cost) of (?:the )?(?:set up|setup|installation|assembly)"
    r"|(?:set up|setup|installation|assembly) (?:is |be )?(?:free|extra|included)"
    r"|combien (?:coute|ca coute pour) l installation|prix de l installation"
    r"|l installation est (?:elle )?gratuite"
    r"|cuanto cuesta (?:la instalacion|el armado|el montaje)|precio de la instalacion"
    r"|la instalacion es gratis"
)
INTENT_CUES += [("human", 4, ABOUT_THE_ORDER), ("human", 10, SETUP_PRICE)]

# Asking what is held about them, or to have it erased (PIPEDA, GDPR): the retailer's team answers, in
# the console, with the export and the erasure of bot/privacy.py. "Stop texting me and delete my
# number" stays an opt-out (stop weighs 5): stopping the messages is what carriers require at once.
PERSONAL_DATA = (
    r"(?:delete|erase|remove|wipe|forget|destroy)(?: all)? (?:of )?(?:my|our) (?:personal )?"
    r"(?:data|information|info|details|records?|phone number|number|account)"
    r"|personal (?:data|information|info|details)|privacy|pipeda|gdpr"
    r"|what (?:data|information|info|details) do you (?:have|keep|hold|store|collect)"
    r"|(?:a )?copy of (?:my|the) (?:personal )?(?:data|information)"
    r"|(?:supprim\w*|effac\w*|retir\w*|detrui\w*)(?: toutes?)? (?:mes|nos) "
    r"(?:donnees|informations|renseignements|coordonnees|numero|infos)"
    r"|donnees personnelles|renseignements personnels|informations personnelles|vie privee|confidentialite"
    r"|quelles (?:donnees|informations) (?:avez vous|vous avez|gardez vous)"
    r"|(?:borr\w*|elimin\w*|suprim\w*|quit\w*)(?: todos)? (?:mis|nuestros) datos"
    r"|(?:borr\w*|elimin\w*|suprim\w*) mi (?:numero|informacion|cuenta)"
    r"|datos personales|informacion personal|privacidad"
    r"|que (?:datos|informacion) (?:tienen|tiene|guardan|guarda) (?:de|sobre) mi"
)
INTENT_CUES += [("personal_data", 4, PERSONAL_DATA)]

# A new address (they moved, or want it sent elsewhere than a pickup point) is a person's call too; it
# outweighs the "deliver ... instead" that would otherwise read as a new time.
INTENT_CUES += [
    (
        "human",
        4,
        r"(?:i|we) (?:just |have |recently )?moved(?! (?:it|the|my delivery|my parcel|the delivery))"
        r"|new address|different address|another address|other address|work address"
        r"|deliver (?:it |this |my parcel |the parcel )?to (?:my (?:office|work|new|other)|\d+ [a-z])"
        r"|(?:send|bring|ship|take) (?:it |this |my parcel |the parcel )?to my (?:office|work|job|workplace)"
        r"|(?:go|come) to my (?:office|work|job|workplace)"
        r"|(?:change|update|correct|fix) (?:the |my |our )?(?:delivery |shipping |home )?address"
        r"|address (?:change|update)"
        r"|(?:livr\w*|envoy\w*|apport\w*)(?: le| la| mon colis)? (?:a|au) (?:mon )?(?:bureau|travail)"
        r"|(?:changer|modifier|corriger) (?:l |mon |ma )?adresse"
        r"|(?:entreg\w*|llev\w*|mand\w*|envi\w*)(?: lo| la)? (?:a|en|al) (?:mi )?(?:trabajo|oficina)"
        r"|(?:cambiar|actualizar|corregir) (?:mi |la )?direccion"
        r"|(?:j ai|nous avons|on a) demenage|nouvelle adresse|autre adresse"
        r"|adresse (?:du|de mon) (?:bureau|travail)"
        r"|livre[rz]? (?:le |la |mon colis )?au \d+ [a-z]"
        r"|me mude|nos mudamos|me he mudado|nueva direccion|otra direccion"
        r"|direccion (?:de mi )?(?:trabajo|oficina)"
        r"|entreg\w* en (?:la )?calle",
    ),
]

INTENT_CUES += [
    (
        "where_is_parcel",
        3,
        r"still on for|still happening|still coming|(?:nobody|no one|noone) (?:has )?(?:shown up|came|come)"
        r"|(?:l|la|le) attends (?:encore|toujours)|attends encore|personne (?:n )?est (?:venu|passe)"
        r"|sigue en pie|(?:nadie|no) ha (?:venido|pasado) nadie|nadie ha (?:venido|pasado)",
    ),
    (
        "instructions",
        3,
        r"ring (?:twice|once|the bell|the buzzer|\d+)|knock (?:loud|hard|twice)|frappez|frapper",
    ),
    ("instructions", 1, r"upstairs|downstairs|en haut|en bas|arriba|abajo"),
    ("white_glove", 4, r"hook(?:ed)? (?:\w+ )?up|connect the|conectar|conecten|conectarlo|brancher|branchez"),
]

# Asking in words not to be written to any more is an opt-out too, not only the carrier keywords.
INTENT_CUES += [
    (
        "stop",
        5,
        r"stop (?:sending|texting|messaging|contacting|writing|emailing)|unsubscribe me|opt (?:me )?out"
        r"|(?:do not|dont) (?:text|message|contact) me|no more (?:texts|messages)"
        r"|(?:arretez|arrete|cessez) de m (?:envoyer|ecrire|texter|contacter)|(?:plus|pas) de (?:textos|"
        r"messages)"
        r"|desabonner|desinscrire|dejen de (?:enviar|mandar|escribir)(?:me|nos)?|no (?:me )?(?:manden|envien|"
        r"escriban) mas"
        r"|darme de baja|dar(?:me)? de baja|desuscribir",
    ),
]

# Single words that lean towards an intent, consulted only when no phrase above matched, no time was
# asked for and the message is not a social move: a last resort before "unknown".
LOOSE_WORDS: dict[str, frozenset[str]] = {
    "where_is_parcel": _words(
        """where when status eta track tracking arrive arriving arrival coming shipped delivered driver truck
        ou quand arrive arrivee livreur camion suivi statut donde cuando llega llegada repartidor estado
        rastreo envio"""
    ),
    "reschedule": _words(
        """reschedule change another different later earlier move push delay postpone instead changer autre
        reporter remettre decaler cambiar otro otra mover aplazar retrasar"""
    ),
    "redirect_pickup": _words(
        """pickup pick collect locker depot counter relay ramasser chercher recuperer casier relais comptoir
        recoger buscar sucursal casillero"""
    ),
    "white_glove": _words(
        "install assemble setup mount installer installation montage monter instalar armar montar"
    ),
    "instructions": _words(
        """door porch neighbour code buzzer gate leave garage porte voisin voisine laisser sonnette puerta
        vecino vecina dejar timbre codigo"""
    ),
    "human": _words(
        "person human agent someone call phone personne humain appeler persona humano alguien llamar"
    ),
}
# Words for the parcel itself: alone ("my parcel?") they ask where it is.
PARCEL_WORDS = _words("parcel package order delivery colis paquet commande livraison paquete pedido entrega")

# Phrases that are greetings or good wishes, not times ("good morning", "buenas tardes"): removed
# from the text the window reader sees.
COURTESY_TIME_PHRASES = _w(
    r"good (?:morning|afternoon|evening|night)|have a (?:good|nice|great) (?:day|night|evening|afternoon|"
    r"weekend|week end)"
    r"|bon matin|bonne (?:journee|soiree|nuit|apres midi|fin de semaine)|bon apres midi"
    r"|hasta manana|hasta el (?:lunes|martes|miercoles|jueves|viernes|sabado|domingo)|a demain|"
    r"see you tomorrow"
    r"|buenos dias|buenas (?:tardes|noches)|buen dia|que tengas (?:buen|buena|un buen|una buena) \w+"
)

# Words the window reader knows (kept from typo correction's reach and used for it).
TIME_WORDS = _words(
    """today tonight tomorrow morning afternoon evening night noon midday midnight after before
between from until till to and by around about at on in the next this coming week weekend day days
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december jan feb mar apr jun jul aug sep sept oct nov dec o clock
early late latest earliest anytime any time not later earlier than past starting start end of lunch
lunchtime aujourd hui ce soir matin matinee midi minuit apres avant entre vers jusqu des partir demain
apres-demain lundi mardi mercredi jeudi vendredi samedi dimanche janvier fevrier mars avril mai juin
juillet aout septembre octobre novembre decembre prochain prochaine semaine fin debut tot tard heures
heure h journee soiree midi dans jours jour plus au pas ou et hoy manana pasado esta este noche tarde
mediodia medianoche despues antes entre desde hasta las los la del de lunes martes miercoles jueves
viernes sabado domingo enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre
diciembre proximo proxima semana que viene fin temprano dias dia horas hora alrededor eso cerca partir
mas tardar mismo avantmidi apresmidi"""
)

COMMON_WORDS = _words(
    """mandarme enviarme escribirme mandarnos enviarnos mensajes mensaje textos texto messages texts
entregarlo entregarla entregarme entregarlos traerlo traerla traermelo mandarlo mandarla enviarlo
llevarlo llevarla dejarmelo pasarlo
proche pres loin bientot besoin ai avons lave vaisselle laveuse secheuse frigo meuble lit table
chaise bureau porte fenetre quelqu on qu expedie expediee envoye depuis toute journee matinee mieux irait
chemin route cote entree escalier etage sous-sol exactement vraiment juste seulement encore aussi aussi
shipped shipping close nearby idea supposed since morning whole hold keep send sent chair couch table bed
desk fridge washer dryer dishwasher stove entrance stairs basement upstairs downstairs
envio enviaron enviado pronto cerca lejos armen arme cama mesa silla sillon refrigerador lavadora secadora
entrada escalera sotano piso toda todo llevo esperando comunican comunicar alguien mismo misma yo
there here were where their they them then than that those these what which who whom
whose why how have has had having want wants need needs must should would could can will shall may might
get got give gave take took make made know knew think see saw look find told tell said say says ask asked
work working works home house place address street avenue road parcel package order box delivery driver
courier stuff thing items item please thanks thank hello sorry again already still yet only also just even
very really much many more most some any every each other another same such own sure well back front side
inside outside under over into onto with without about above below behind beside near far long short big
small good great nice fine okay right left wrong true false name number phone email text message call
called calling reply answer question problem issue help need wait waiting waited arrive arrived arriving
coming come came going gone goes went deliver delivered delivering send sent sending bring brought drop
dropped leave left stay stayed open close closed door doors window gate code buzzer lobby floor room office
store shop pick picked picking collect collected office friend family wife husband son daughter kids
neighbour neighbours anyone someone something nothing everything nobody everybody somebody person people
money card cash paid pay payment refund return returned cancel cancelled canceled problem broken damage
damaged missing lost stolen wrong received receive receiving tracking track email mail mailbox
quoi quel quelle quels quelles comment pourquoi combien parce puisque lorsque depuis pendant toujours
encore deja jamais rien tout tous toute toutes autre autres meme memes bien mal beaucoup peu trop tres
assez maison adresse rue appartement logement bureau travail colis commande boite livreur chauffeur
camion telephone courriel message numero question probleme aide attendre attends attendu recevoir recu
arriver arrive venir vient viens vais va vas vont avoir ai as avons avez ont etre suis es sommes etes
sont fait faire faites dit dire peux peut pouvons pouvez peuvent veux veut voulons voulez veulent dois
doit devez merci bonjour bonsoir salut allo oui non peut-etre
que como cuando donde porque quien cual cuanto cuantos siempre nunca todavia tambien nada todo todos
toda todas otro otra otros mismo bien mal mucho poco muy casa direccion calle apartamento oficina
trabajo paquete pedido caja repartidor chofer camion telefono correo mensaje numero pregunta problema
ayuda esperar espero esperando recibir recibi llegar llega llego venir viene vengo voy vas vamos van
tener tengo tiene tenemos ser soy eres somos son estar estoy esta estamos estan hacer hago hace decir
digo dice poder puedo puede podemos pueden querer quiero quiere necesito necesita gracias hola adios
"""
)


def words_of(pattern: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", re.sub(r"\\[a-zA-Z]", " ", pattern)) if len(w) >= 2}


def _known_words() -> frozenset[str]:
    words: set[str] = set(TIME_WORDS) | set(COMMON_WORDS) | set(LANGUAGE_NAMES)
    for vocabulary in LANGUAGE_WORDS.values():
        words |= vocabulary
    for _intent, _weight, pattern in INTENT_CUES:
        words |= words_of(pattern)
    for expansion in SHORTHAND.values():
        words |= set(expansion.split())
    words |= STOP_WORDS | START_WORDS | HELP_WORDS | PARCEL_WORDS
    for loose in LOOSE_WORDS.values():
        words |= loose
    return frozenset(w for w in words if w.isalpha())


KNOWN_WORDS = _known_words()
WORD_PATTERN = _w
