//! Lookout's category taxonomy and the default mapping from third-party list names to it.
//!
//! The taxonomy follows the UK Safer Internet Centre's "appropriate filtering" content
//! categories (illegal content, discrimination, drugs, extremism, gambling, malware/hacking,
//! pornography, piracy, self-harm, violence) and adds the service categories a college sets per
//! group (social media, chat, games, webmail, ...).

use std::borrow::Cow;
use std::fmt;

/// One category of Lookout's taxonomy: an index into [`CATEGORIES`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(u8);

/// Static description of a category.
#[derive(Debug)]
pub struct CategoryInfo {
    /// Stable identifier used in configuration files, logs and JSON.
    pub slug: &'static str,
    /// Human title for block pages and reports.
    pub title: &'static str,
    /// Illegal content: always blocked, for everyone, whatever the configuration says.
    pub illegal: bool,
    /// One line saying what belongs here.
    pub description: &'static str,
}

macro_rules! taxonomy {
    ($( $konst:ident = $slug:literal, $title:literal, $illegal:literal, $desc:literal; )*) => {
        /// Every category, in the order of their ids.
        pub static CATEGORIES: &[CategoryInfo] = &[
            $( CategoryInfo { slug: $slug, title: $title, illegal: $illegal, description: $desc }, )*
        ];
        /// Bit set of the illegal categories, computed at compile time.
        const ILLEGAL_BITS: u64 = {
            let flags = [$( $illegal, )*];
            let mut bits = 0u64;
            let mut i = 0;
            while i < flags.len() {
                if flags[i] {
                    bits |= 1 << i;
                }
                i += 1;
            }
            bits
        };
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        enum Ids { $( $konst, )* }
        impl Category {
            $( #[doc = $desc] pub const $konst: Category = Category(Ids::$konst as u8); )*
        }
    };
}

taxonomy! {
    ILLEGAL_CHILD_ABUSE = "illegal-child-abuse", "Child sexual abuse content", true,
        "Child sexual abuse material, e.g. the IWF URL list (operator-supplied).";
    ILLEGAL_TERRORISM = "illegal-terrorism", "Terrorist content", true,
        "Unlawful terrorist content, e.g. the CTIRU list (operator-supplied).";
    PORNOGRAPHY = "pornography", "Pornography", false,
        "Sexually explicit material.";
    ADULT_THEMES = "adult-themes", "Adult themes", false,
        "Sites mixing adult and general content, lingerie, adult humour.";
    DISCRIMINATION = "discrimination", "Discrimination", false,
        "Promotes unfair treatment of people because of protected characteristics.";
    HATE_SPEECH = "hate-speech", "Hate speech", false,
        "Racist, antisemitic or otherwise hateful material.";
    EXTREMISM = "extremism", "Extremism", false,
        "Promotes extremist ideologies or radicalisation.";
    DRUGS = "drugs", "Drugs and substance abuse", false,
        "Illegal drugs, misuse of legal substances.";
    ALCOHOL_TOBACCO = "alcohol-tobacco", "Alcohol, tobacco and vaping", false,
        "Sale or promotion of alcohol, tobacco and vaping products.";
    GAMBLING = "gambling", "Gambling", false,
        "Betting, casinos, lotteries.";
    SELF_HARM = "self-harm", "Self-harm and suicide", false,
        "Promotes or displays self-harm, suicide or eating disorders.";
    VIOLENCE = "violence", "Violence", false,
        "Promotes violence or aggression.";
    WEAPONS = "weapons", "Weapons and dangerous material", false,
        "Weapons, explosives, dangerous material.";
    MALWARE = "malware", "Malware", false,
        "Malicious software, cryptojacking, stalkerware, dialers.";
    PHISHING = "phishing", "Phishing", false,
        "Sites that steal credentials or payment details.";
    SCAMS = "scams", "Scams and fraud", false,
        "Commercial and financial scams.";
    HACKING = "hacking", "Hacking", false,
        "Hacking tools and services, DDoS for hire.";
    PIRACY = "piracy", "Piracy and copyright theft", false,
        "Illegal provision of copyrighted material.";
    CIRCUMVENTION = "circumvention", "Filter circumvention", false,
        "VPNs, web proxies, redirectors, DNS-over-HTTPS and residential proxies.";
    CHEATING = "cheating", "Academic cheating", false,
        "Essay mills and exam cheating services.";
    CULTS = "cults", "Cults", false,
        "Sects and cults.";
    MISINFORMATION = "misinformation", "Misinformation", false,
        "Fake news and deliberately misleading information.";
    SOCIAL_MEDIA = "social-media", "Social media", false,
        "Social networks.";
    TIKTOK = "tiktok", "TikTok", false,
        "TikTok and its content delivery hosts.";
    DATING = "dating", "Dating", false,
        "Dating and relationship sites.";
    CHAT = "chat", "Chat and messaging", false,
        "Chat rooms and instant messaging.";
    FORUMS = "forums", "Forums", false,
        "Discussion forums.";
    BLOGS = "blogs", "Blogs", false,
        "Blogs and personal publishing.";
    GAMES = "games", "Games", false,
        "Online games.";
    WEBMAIL = "webmail", "Webmail", false,
        "Web-based email.";
    FILE_SHARING = "file-sharing", "File sharing", false,
        "File hosting and peer-to-peer file sharing.";
    VIDEO_STREAMING = "video-streaming", "Video and audio streaming", false,
        "Video, music and radio streaming.";
    ADVERTS = "adverts", "Advertising", false,
        "Advertising networks and marketing pop-ups.";
    TRACKING = "tracking", "Tracking and telemetry", false,
        "Tracking, analytics and device telemetry.";
    SHOPPING = "shopping", "Shopping", false,
        "Online shops and auctions.";
    NEWS = "news", "News", false,
        "News and magazines.";
    EDUCATION = "education", "Education", false,
        "Educational resources and sites for children.";
    SEX_EDUCATION = "sex-education", "Sex education", false,
        "Sexual health and sex education.";
    BANKING = "banking", "Banking and finance", false,
        "Banks and financial services (never inspected by default).";
    HEALTH = "health", "Health", false,
        "Health services (never inspected by default).";
    JOB_SEARCH = "job-search", "Job search", false,
        "Job search and recruitment.";
    SPORT = "sport", "Sport", false,
        "Sport.";
    ENTERTAINMENT = "entertainment", "Entertainment", false,
        "Celebrity, manga, astrology and other entertainment.";
    LIFESTYLE = "lifestyle", "Lifestyle", false,
        "Cooking, cleaning and other lifestyle sites.";
    RELIGION = "religion", "Religion", false,
        "Religious associations.";
    CRYPTOCURRENCY = "cryptocurrency", "Cryptocurrency", false,
        "Cryptocurrency exchanges and information.";
    AI_TOOLS = "ai-tools", "AI tools", false,
        "Generative AI chat and content tools.";
    REMOTE_ACCESS = "remote-access", "Remote access", false,
        "Remote desktop and remote control services.";
    URL_SHORTENER = "url-shortener", "URL shorteners", false,
        "Link shorteners, which hide the destination.";
    DYNAMIC_DNS = "dynamic-dns", "Dynamic DNS", false,
        "Dynamic DNS providers, often used to hide servers.";
    WEB_HOSTING = "web-hosting", "Web hosting", false,
        "Free web hosting.";
    SOFTWARE_DOWNLOADS = "software-downloads", "Software downloads", false,
        "Software download portals and update servers.";
    TRANSLATION = "translation", "Translation", false,
        "Translation services (which can also proxy pages).";
    UNCATEGORISED = "uncategorised", "Uncategorised", false,
        "Listed by a source without a meaningful category.";
}

impl Category {
    /// Looks a category up by its slug.
    pub fn from_slug(slug: &str) -> Option<Category> {
        CATEGORIES
            .iter()
            .position(|c| c.slug == slug)
            .map(|i| Category(i as u8))
    }

    /// Every category.
    pub fn all() -> impl Iterator<Item = Category> {
        (0..CATEGORIES.len() as u8).map(Category)
    }

    /// The category's static description.
    pub fn info(self) -> &'static CategoryInfo {
        &CATEGORIES[self.0 as usize]
    }

    /// Stable identifier, e.g. `gambling`.
    pub fn slug(self) -> &'static str {
        self.info().slug
    }

    /// Whether this is an illegal-content category that always blocks.
    pub fn is_illegal(self) -> bool {
        self.info().illegal
    }

    /// Position in [`CATEGORIES`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A set of categories, as a bit set (the taxonomy has fewer than 64 entries).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CategorySet(u64);

const _: () = assert!(CATEGORIES_LEN <= 64);
const CATEGORIES_LEN: usize = Category::UNCATEGORISED.0 as usize + 1;

impl CategorySet {
    /// The empty set.
    pub const EMPTY: CategorySet = CategorySet(0);

    /// Builds a set from raw bits (as stored in an index).
    pub const fn from_bits(bits: u64) -> Self {
        CategorySet(bits)
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Every illegal-content category.
    pub const ILLEGAL: CategorySet = CategorySet(ILLEGAL_BITS);

    /// The set holding every illegal-content category.
    pub const fn illegal() -> Self {
        Self::ILLEGAL
    }

    /// A set of one category.
    pub const fn one(c: Category) -> Self {
        CategorySet(1 << c.0)
    }

    /// Adds a category.
    pub fn insert(&mut self, c: Category) {
        self.0 |= 1 << c.0;
    }

    /// Whether `c` is in the set.
    pub fn contains(self, c: Category) -> bool {
        self.0 & (1 << c.0) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of categories in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Categories in both sets.
    pub fn intersection(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & other.0)
    }

    /// Categories in either set.
    pub fn union(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 | other.0)
    }

    /// Categories in `self` but not in `other`.
    pub fn difference(self, other: CategorySet) -> CategorySet {
        CategorySet(self.0 & !other.0)
    }

    /// The categories, in taxonomy order.
    pub fn iter(self) -> impl Iterator<Item = Category> {
        // One step per member (lowest bit first), not one per possible category: decisions
        // walk a request's categories on every request.
        let mut bits = self.0;
        std::iter::from_fn(move || {
            let i = bits.trailing_zeros();
            bits &= bits.wrapping_sub(1);
            (i < 64).then_some(Category(i as u8))
        })
    }

    /// The slugs, comma-separated, in taxonomy order (as the activity log stores them).
    pub fn slugs(self) -> Cow<'static, str> {
        // None or one category (most decisions) borrow: no allocation for a logged event.
        match self.len() {
            0 => Cow::Borrowed(""),
            1 => Cow::Borrowed(self.first().map_or("", Category::slug)),
            _ => Cow::Owned(
                self.iter()
                    .map(Category::slug)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// The first category in taxonomy order (illegal categories come first).
    pub fn first(self) -> Option<Category> {
        (self.0 != 0).then(|| Category(self.0.trailing_zeros() as u8))
    }
}

impl FromIterator<Category> for CategorySet {
    fn from_iter<I: IntoIterator<Item = Category>>(iter: I) -> Self {
        let mut s = CategorySet::EMPTY;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

impl fmt::Debug for CategorySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Default mapping of a UT1 (Université Toulouse Capitole) category folder name to Lookout's
/// taxonomy. `None` means the folder is not a category (e.g. documentation).
pub fn ut1_default(name: &str) -> Option<CategorySet> {
    use Category as C;
    let set = |cs: &[Category]| Some(cs.iter().copied().collect());
    match name {
        "adult" | "porn" => set(&[C::PORNOGRAPHY]),
        "mixed_adult" | "lingerie" => set(&[C::ADULT_THEMES]),
        "agressif" | "aggressive" | "violence" => set(&[C::VIOLENCE, C::HATE_SPEECH]),
        "ai" => set(&[C::AI_TOOLS]),
        "arjel" | "gambling" => set(&[C::GAMBLING]),
        "associations_religieuses" => set(&[C::RELIGION]),
        "astrology" | "celebrity" | "manga" => set(&[C::ENTERTAINMENT]),
        "audio-video" | "radio" => set(&[C::VIDEO_STREAMING]),
        "bank" | "financial" => set(&[C::BANKING]),
        "bitcoin" => set(&[C::CRYPTOCURRENCY]),
        "blog" => set(&[C::BLOGS]),
        "chat" => set(&[C::CHAT]),
        "child"
        | "educational_games"
        | "liste_blanche"
        | "liste_bu"
        | "exceptions_liste_bu"
        | "examen_pix" => set(&[C::EDUCATION]),
        "cleaning" | "cooking" => set(&[C::LIFESTYLE]),
        "cryptojacking" | "dialer" | "malware" | "stalkerware" => set(&[C::MALWARE]),
        "dangerous_material" => set(&[C::WEAPONS]),
        "dating" => set(&[C::DATING]),
        "ddos" | "hacking" => set(&[C::HACKING]),
        "doh"
        | "vpn"
        | "redirector"
        | "proxy"
        | "strict_redirector"
        | "strong_redirector"
        | "residential-proxies" => set(&[C::CIRCUMVENTION]),
        "download" | "update" => set(&[C::SOFTWARE_DOWNLOADS]),
        "drogue" | "drugs" => set(&[C::DRUGS]),
        "dynamic-dns" => set(&[C::DYNAMIC_DNS]),
        "fakenews" => set(&[C::MISINFORMATION]),
        "filehosting" => set(&[C::FILE_SHARING]),
        "forums" | "mail" => set(&[C::FORUMS]),
        "games" => set(&[C::GAMES]),
        "jobsearch" => set(&[C::JOB_SEARCH]),
        "marketingware" | "publicite" | "ads" => set(&[C::ADVERTS]),
        "mobile-phone" | "shopping" => set(&[C::SHOPPING]),
        "phishing" => set(&[C::PHISHING]),
        "press" => set(&[C::NEWS]),
        "reaffected" | "special" => set(&[C::UNCATEGORISED]),
        "remote-control" => set(&[C::REMOTE_ACCESS]),
        "sect" => set(&[C::CULTS]),
        "sexual_education" => set(&[C::SEX_EDUCATION]),
        "shortener" => set(&[C::URL_SHORTENER]),
        "social_networks" => set(&[C::SOCIAL_MEDIA]),
        "sports" => set(&[C::SPORT]),
        "translation" => set(&[C::TRANSLATION]),
        "tricheur" | "tricheur_pix" => set(&[C::CHEATING]),
        "warez" => set(&[C::PIRACY]),
        "webhosting" => set(&[C::WEB_HOSTING]),
        "webmail" => set(&[C::WEBMAIL]),
        _ => None,
    }
}

/// Default mapping of a Block List Project list (by file stem, e.g. `gambling` for
/// `gambling.txt` or `phishing-nl.txt`) to Lookout's taxonomy.
pub fn blocklistproject_default(stem: &str) -> Option<CategorySet> {
    use Category as C;
    let stem = stem.split(['.', '-']).next().unwrap_or(stem);
    let set = |cs: &[Category]| Some(cs.iter().copied().collect());
    match stem {
        "abuse" | "fraud" | "scam" => set(&[C::SCAMS]),
        "ads" | "basic" => set(&[C::ADVERTS, C::TRACKING]),
        "adobe" | "smart" | "tracking" => set(&[C::TRACKING]),
        "crypto" | "malware" | "ransomware" => set(&[C::MALWARE]),
        "drugs" => set(&[C::DRUGS]),
        "facebook" | "twitter" => set(&[C::SOCIAL_MEDIA]),
        "fortnite" => set(&[C::GAMES]),
        "gambling" => set(&[C::GAMBLING]),
        "phishing" => set(&[C::PHISHING]),
        "piracy" => set(&[C::PIRACY]),
        "porn" => set(&[C::PORNOGRAPHY]),
        "redirect" => set(&[C::CIRCUMVENTION]),
        "tiktok" => set(&[C::TIKTOK]),
        "torrent" => set(&[C::FILE_SHARING, C::PIRACY]),
        "vaping" => set(&[C::ALCOHOL_TOBACCO]),
        "whatsapp" => set(&[C::CHAT]),
        "youtube" => set(&[C::VIDEO_STREAMING]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_set_lists_exactly_its_members_in_order(bits: u64) {
            let want: Vec<u8> = (0..64u8).filter(|i| bits & (1 << i) != 0).collect();
            let got: Vec<u8> = CategorySet::from_bits(bits).iter().map(|c| c.0).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn slugs_round_trip_and_are_unique() {
        for c in Category::all() {
            assert_eq!(Category::from_slug(c.slug()), Some(c), "{c}");
        }
        let mut slugs: Vec<_> = CATEGORIES.iter().map(|c| c.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), CATEGORIES.len());
    }

    /// The log's categories: none and one borrowed (no allocation), several joined in
    /// taxonomy order.
    #[test]
    fn slugs_borrow_one_and_join_several() {
        let table: [(&[Category], &str, bool); 3] = [
            (&[], "", true),
            (&[Category::GAMBLING], "gambling", true),
            (
                &[Category::GAMBLING, Category::ILLEGAL_CHILD_ABUSE],
                "illegal-child-abuse,gambling",
                false,
            ),
        ];
        for (categories, want, borrowed) in table {
            let set: CategorySet = categories.iter().copied().collect();
            let slugs = set.slugs();
            assert_eq!(slugs, want);
            assert_eq!(matches!(slugs, Cow::Borrowed(_)), borrowed, "{want}");
        }
    }

    #[test]
    fn illegal_categories_sort_first() {
        // `CategorySet::first` relies on this to report the illegal category first.
        let illegal = CategorySet::illegal();
        assert_eq!(illegal.len(), 2);
        let slow: CategorySet = Category::all().filter(|c| c.is_illegal()).collect();
        assert_eq!(illegal, slow);
        for c in Category::all().take(illegal.len()) {
            assert!(c.is_illegal(), "{c}");
        }
    }

    #[test]
    fn required_categories_exist() {
        for slug in [
            "illegal-child-abuse",
            "illegal-terrorism",
            "pornography",
            "discrimination",
            "hate-speech",
            "extremism",
            "drugs",
            "gambling",
            "self-harm",
            "violence",
            "weapons",
            "malware",
            "phishing",
            "hacking",
            "piracy",
            "circumvention",
            "social-media",
            "tiktok",
            "dating",
            "chat",
            "games",
            "webmail",
            "file-sharing",
            "adverts",
            "shopping",
            "news",
            "education",
        ] {
            assert!(Category::from_slug(slug).is_some(), "{slug}");
        }
    }

    #[test]
    fn default_mappings() {
        let check = |got: Option<CategorySet>, want: &[&str]| {
            let want: CategorySet = want
                .iter()
                .map(|s| Category::from_slug(s).unwrap())
                .collect();
            assert_eq!(got, Some(want));
        };
        check(ut1_default("gambling"), &["gambling"]);
        check(ut1_default("drogue"), &["drugs"]);
        check(ut1_default("agressif"), &["violence", "hate-speech"]);
        check(ut1_default("doh"), &["circumvention"]);
        check(
            blocklistproject_default("gambling.2020-09-02"),
            &["gambling"],
        );
        check(blocklistproject_default("phishing-nl"), &["phishing"]);
        check(blocklistproject_default("tiktok"), &["tiktok"]);
        assert_eq!(ut1_default("global_usage"), None);
        assert_eq!(blocklistproject_default("LICENSE"), None);
    }
}
